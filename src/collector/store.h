/*
 * store.h - the trace store: spans kept on disk under the data directory, with the indexes
 * the query APIs need (internal; the design and its measurements are in store.c and
 * docs/tracing.md).
 *
 * Threads: col_store_append may be called from any thread (the gateway's and the ingest
 * listeners' workers); it encodes the spans on the calling thread and queues them for the
 * store's writer thread, which writes, syncs (one sync for everything queued: group commit)
 * and then calls each append's done callback on the writer thread. The queries may be
 * called from any thread, concurrently with appends and with each other; they read what
 * is durable (acknowledged) and never block on the writer's disk writes for long.
 *
 * Limits: the write queue is bounded in bytes (queue_bytes): an append past it is refused
 * at once with WEFT_ELIMIT (the ingest answers 429 with Retry-After), never queued without
 * bound. Memory for the indexes is bounded by what retention keeps.
 */
#ifndef WEFT_COLLECTOR_STORE_H
#define WEFT_COLLECTOR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/span.h"
#include "core/arena.h"
#include "weft/common.h"

/* A read of the store's files failed or found them damaged (weft/common.h has no I/O code
 * yet; errno's, as WEFT_ENOSPC is). */
#ifndef WEFT_EIO
#define WEFT_EIO (-EIO)
#endif

typedef struct col_store_s col_store_t;

typedef struct col_store_conf_s {
    const char *dir;       /* created when missing (its parent must exist) */
    uint64_t max_bytes;    /* retention by size: the oldest data goes past this; default 1 GiB */
    uint64_t max_age_ms;   /* retention by age: spans older than this go; default 7 days */
    size_t queue_bytes;    /* bound of the write queue; default 64 MiB */
    bool sync;             /* fdatasync before acknowledging (default true; false for tests
                              and benchmarks that say so) */
} col_store_conf_t;

/* Fills c with the defaults above (dir NULL). */
void col_store_conf_init(col_store_conf_t *c);

/* Opens (or creates) the store in c->dir, recovering what a crash left: data written but
 * cut off mid-write is dropped, everything acknowledged is kept. Starts the writer thread.
 * 0, or a negative WEFT_E* code with one line in err naming the file and what is wrong. */
int col_store_open(const col_store_conf_t *c, col_store_t **out, char *err, size_t errlen);
/* Writes what is queued (calling its done callbacks), stops the writer and frees the
 * store. NULL is fine. */
void col_store_close(col_store_t *s);

/* done(status, arg): status 0 once the spans are durable, or a negative WEFT_E* code when
 * they could not be written (disk full, I/O error). Called on the writer thread. */
typedef void (*col_store_done_fn)(int status, void *arg);

/* Queues copies of the n spans (span.h's views need not outlive the call). Returns 0 (done
 * will be called exactly once), or without calling done: WEFT_ELIMIT when the queue is
 * full, WEFT_ECLOSED when the store is closing, WEFT_ENOMEM. done may be NULL (the gateway's
 * own spans: nobody waits). */
int col_store_append(col_store_t *s, const col_span_t *spans, size_t n, col_store_done_fn done,
                     void *arg);

/* ---- queries: results are copied into the caller's arena ---- */

/* The spans of one trace (in no particular order), *n = 0 when none is stored. 0, or
 * WEFT_ENOMEM / WEFT_EIO. */
int col_store_trace(col_store_t *s, const uint8_t trace_id[16], weft_arena_t *a,
                    col_span_t **spans, size_t *n);

#define COL_QUERY_MAX_TAGS 16

/* A search: a trace matches when one of its spans matches every condition given (Zipkin's
 * and Jaeger's meaning). Empty strings and zeros mean "any". */
typedef struct col_query_s {
    col_str_t service;        /* the span's resource service */
    col_str_t span_name;      /* Zipkin spanName, Jaeger operation */
    col_str_t remote_service; /* Zipkin remoteServiceName */
    uint64_t min_duration_ns, max_duration_ns;
    uint64_t start_ns, end_ns; /* the span starts in [start_ns, end_ns]; end_ns 0: now */
    struct {
        col_str_t key, value;
        bool any_value; /* Zipkin annotationQuery "key" alone: the tag or an event of that
                           name exists */
    } tags[COL_QUERY_MAX_TAGS]; /* an attribute (of the span or its resource) whose value,
                                   as text, equals value */
    size_t ntags;
    size_t limit; /* traces; 0: 20 */
} col_query_t;

/* The ids of the matching traces, newest (by the matching span's start) first, at most
 * q->limit and at most max. 0, or WEFT_ENOMEM / WEFT_EIO. */
int col_store_search(col_store_t *s, const col_query_t *q, uint8_t (*ids)[16], size_t max,
                     size_t *n);

/* Service names, sorted. */
int col_store_services(col_store_t *s, weft_arena_t *a, col_str_t **names, size_t *n);

typedef struct col_operation_s {
    col_str_t name;
    uint8_t kind; /* COL_KIND_* */
} col_operation_t;
/* The (span name, kind) pairs seen for service (every service when service.n == 0),
 * sorted by name then kind. */
int col_store_operations(col_store_t *s, col_str_t service, weft_arena_t *a,
                         col_operation_t **ops, size_t *n);
/* The remote service names seen for service (Zipkin's /remoteServices), sorted. */
int col_store_remote_services(col_store_t *s, col_str_t service, weft_arena_t *a,
                              col_str_t **names, size_t *n);

/* The ids of the live blocks, [*first, *end): a block written later gets an id >= *end,
 * and retention, deleting the oldest, raises *first. A caller that has read the blocks of
 * one range reads only [its end, *end) next time, and all again when *first moved. */
void col_store_blocks(col_store_t *s, uint32_t *first, uint32_t *end);

/* Called for each attribute named key; false stops the walk. a and its strings are valid
 * only during the call. */
typedef bool (*col_store_attr_fn)(const col_attr_t *a, void *arg);
/* Calls fn for every attribute named key of the spans, and of their resources (once per
 * resource record), in the live blocks with ids in [from, to), newest block first (Zipkin's
 * autocompleteValues: the tags search matches, span and resource attributes). Blocks
 * retention deletes meanwhile are left out. 0, or WEFT_ENOMEM / WEFT_EIO. */
int col_store_attr_values(col_store_t *s, col_str_t key, uint32_t from, uint32_t to,
                          col_store_attr_fn fn, void *arg);

/* Counters for /metrics and the dashboard. */
typedef struct col_store_stats_s {
    uint64_t spans;        /* stored now */
    uint64_t traces;       /* stored now (approximately) */
    uint64_t disk_bytes;   /* the files' sizes */
    uint64_t memory_bytes; /* the indexes' */
    uint64_t appended, refused_full, write_errors, expired;
    size_t queued_bytes;
} col_store_stats_t;
void col_store_stats(col_store_t *s, col_store_stats_t *st);

#endif
