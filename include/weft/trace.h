/**
 * weft/trace.h - trace context (W3C Trace Context, B3), spans, samplers, exporters.
 *
 * Context: weft_trace_context_t carries a trace id, a span id, the flags and the
 * tracestate. It is parsed from and written to headers without allocation.
 *
 * Spans: weft_span_start begins a span as a child of an explicit parent context (or a
 * root); weft_span_end hands it to the tracer's exporter. A span belongs to the thread that
 * started it: set attributes and end it there. Span memory comes from a per-thread free
 * list, so steady-state tracing allocates nothing. A span that is not sampled, or whose
 * tracer has no exporter, does not record (its setters return at once) but still has a
 * valid context, so propagation works either way.
 *
 * Exporters receive finished spans synchronously on the ending thread, one call per span;
 * an exporter that sends them over the network queues and batches on its own (a later
 * issue). weft_trace_memory_exporter_* keeps copies in memory (tests, debugging).
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stdbool.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_TRACEPARENT_LEN    55  /* "00-" 32 "-" 16 "-" 2 */
#define WEFT_TRACESTATE_MAX     512 /* bytes kept; longer tracestate is dropped */
#define WEFT_TRACESTATE_MEMBERS 32
#define WEFT_SPAN_MAX_ATTRS     32
#define WEFT_SPAN_MAX_EVENTS    16
#define WEFT_SPAN_NAME_MAX      128
#define WEFT_SPAN_STRINGS       2048 /* bytes of attribute keys and string values per span */

#define WEFT_TRACE_FLAG_SAMPLED 0x01

typedef struct weft_trace_context_s {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0: sampled */
    bool remote;   /* came from another process */
    uint16_t tracestate_len;
    char tracestate[WEFT_TRACESTATE_MAX]; /* validated W3C tracestate, not NUL-terminated */
} weft_trace_context_t;

/* ---- propagation ---- */

/** Parses a traceparent header value. Returns 0 or WEFT_EPARSE (then *ctx is unchanged). */
WEFT_EXTERN int weft_traceparent_parse(const char *s, size_t len, weft_trace_context_t *ctx);
/** Writes the traceparent of ctx (version 00) into out (>= WEFT_TRACEPARENT_LEN bytes, no
 *  NUL written); returns WEFT_TRACEPARENT_LEN. */
WEFT_EXTERN size_t weft_traceparent_format(const weft_trace_context_t *ctx, char *out);

/** Validates a tracestate value (several header lines already joined with ','): on success
 *  stores it, normalised (no empty members, single ',' separators), into ctx. Returns 0 or
 *  WEFT_EPARSE (then ctx's tracestate is emptied, as the spec says invalid state is dropped). */
WEFT_EXTERN int weft_tracestate_parse(const char *s, size_t len, weft_trace_context_t *ctx);
/** Puts key=value first in ctx's tracestate, removing an older entry for key, dropping the
 *  last members beyond 32 or 512 bytes. Returns 0 or WEFT_EINVAL (bad key or value). */
WEFT_EXTERN int weft_tracestate_put(weft_trace_context_t *ctx, const char *key, const char *value);

/** Parses a `b3` single header ("{trace}-{span}[-{sampled}[-{parent}]]"). The deny-only forms
 *  "0"/"d"/"1" carry no ids: WEFT_ENOENT. Returns 0, WEFT_ENOENT or WEFT_EPARSE. */
WEFT_EXTERN int weft_b3_parse(const char *s, size_t len, weft_trace_context_t *ctx);
/** Writes "{trace32}-{span16}-{0|1}" into out (>= 52 bytes); returns the length. */
WEFT_EXTERN size_t weft_b3_format(const weft_trace_context_t *ctx, char *out);

/** Looks a header up: returns 1 and sets *value and *len when present (several lines of the same
 *  header joined or the first one: the caller's choice), 0 when absent. */
typedef int (*weft_trace_getter_fn)(void *arg, const char *name, const char **value, size_t *len);
/** Sets a header; returns 0 or a negative error. */
typedef int (*weft_trace_setter_fn)(void *arg, const char *name, const char *value, size_t len);

/** Extracts a context: traceparent (+ tracestate), else b3, else X-B3-TraceId/SpanId/Sampled
 *  /Flags. Returns 0 (ctx->remote set) or WEFT_ENOENT when no valid context is present. */
WEFT_EXTERN int weft_trace_extract(weft_trace_getter_fn get, void *arg, weft_trace_context_t *ctx);

#define WEFT_PROPAGATE_W3C 1
#define WEFT_PROPAGATE_B3  2 /* single `b3` header */
/** Injects ctx as the formats in mask. Returns 0 or the first setter error. */
WEFT_EXTERN int weft_trace_inject(const weft_trace_context_t *ctx, unsigned mask,
                                  weft_trace_setter_fn set, void *arg);

/** Fills id with random bytes from a per-thread generator, never all zero. */
WEFT_EXTERN void weft_trace_random_trace_id(uint8_t id[16]);
WEFT_EXTERN void weft_trace_random_span_id(uint8_t id[8]);

/* ---- samplers ---- */

typedef enum {
    WEFT_SAMPLER_ALWAYS_ON,
    WEFT_SAMPLER_ALWAYS_OFF,
    WEFT_SAMPLER_RATIO,
} weft_sampler_kind_t;

/** A sampler is a small value. parent_based: follow a parent's sampled flag when there is a
 *  parent (remote or local), else decide with the root kind. */
typedef struct weft_sampler_s {
    weft_sampler_kind_t root;
    double ratio; /* for WEFT_SAMPLER_RATIO, in [0, 1] */
    bool parent_based;
} weft_sampler_t;

WEFT_EXTERN weft_sampler_t weft_sampler_always_on(void);
WEFT_EXTERN weft_sampler_t weft_sampler_always_off(void);
/** Samples a trace when its id's last 8 bytes, big-endian, are below ratio * 2^64: every
 *  service with the same ratio decides the same for the same trace. */
WEFT_EXTERN weft_sampler_t weft_sampler_ratio(double ratio);
WEFT_EXTERN weft_sampler_t weft_sampler_parent_based(weft_sampler_t root);
/** The decision for a new span of trace_id under parent (NULL for a root). */
WEFT_EXTERN bool weft_sampler_should_sample(const weft_sampler_t *s,
                                            const weft_trace_context_t *parent,
                                            const uint8_t trace_id[16]);

/* ---- spans ---- */

typedef enum {
    WEFT_SPAN_INTERNAL = 0,
    WEFT_SPAN_SERVER = 1,
    WEFT_SPAN_CLIENT = 2,
    WEFT_SPAN_PRODUCER = 3,
    WEFT_SPAN_CONSUMER = 4
} weft_span_kind_t;

typedef enum {
    WEFT_SPAN_STATUS_UNSET = 0,
    WEFT_SPAN_STATUS_OK = 1,
    WEFT_SPAN_STATUS_ERROR = 2
} weft_span_status_t;

typedef enum { WEFT_ATTR_STRING, WEFT_ATTR_INT, WEFT_ATTR_DOUBLE, WEFT_ATTR_BOOL } weft_attr_type_t;

typedef struct weft_attr_s {
    const char *key; /* points into the span's own storage */
    weft_attr_type_t type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
} weft_attr_t;

typedef struct weft_span_event_s {
    const char *name;
    uint64_t time_ns;
} weft_span_event_t;

/** A finished span as exporters see it (read-only; valid during the export call). */
typedef struct weft_span_data_s {
    const char *service_name;
    char name[WEFT_SPAN_NAME_MAX];
    weft_span_kind_t kind;
    weft_trace_context_t context; /* this span's context */
    uint8_t parent_span_id[8];    /* all zero for a root span */
    bool parent_remote;
    uint64_t start_ns, end_ns; /* Unix epoch nanoseconds */
    weft_span_status_t status;
    const char *status_message; /* NULL or text in the span's storage */
    weft_attr_t attrs[WEFT_SPAN_MAX_ATTRS];
    unsigned nattrs, dropped_attrs;
    weft_span_event_t events[WEFT_SPAN_MAX_EVENTS];
    unsigned nevents, dropped_events;
} weft_span_data_t;

typedef struct weft_span_exporter_s weft_span_exporter_t;
struct weft_span_exporter_s {
    /** Receives one finished span, on the thread that ended it. */
    void (*export_span)(weft_span_exporter_t *self, const weft_span_data_t *span);
    /** Flushes and frees the exporter (called by weft_tracer_free). May be NULL. */
    void (*shutdown)(weft_span_exporter_t *self);
};

typedef struct weft_tracer_s weft_tracer_t;
typedef struct weft_span_s weft_span_t;

typedef struct weft_tracer_options_s {
    const char *service_name;       /* copied */
    weft_sampler_t sampler;         /* default: parent_based(always_on) */
    weft_span_exporter_t *exporter; /* NULL: spans do not record; the tracer owns it */
} weft_tracer_options_t;

WEFT_EXTERN void weft_tracer_options_init(weft_tracer_options_t *o);
/** Returns 0 and *out, WEFT_EINVAL or WEFT_ENOMEM. */
WEFT_EXTERN int weft_tracer_new(const weft_tracer_options_t *o, weft_tracer_t **out);
/** Shuts the exporter down and frees the tracer; no span of it may be open. */
WEFT_EXTERN void weft_tracer_free(weft_tracer_t *t);

/**
 * Starts a span named name (copied, cut to 127 bytes) of kind, child of parent (NULL: a new
 * trace). Returns the span, or NULL only when out of memory (every setter accepts NULL).
 */
WEFT_EXTERN weft_span_t *weft_span_start(weft_tracer_t *t, const char *name, weft_span_kind_t kind,
                                         const weft_trace_context_t *parent);
/** Renames a recording span (name copied, cut to 127 bytes); OpenTelemetry's UpdateName.
 *  Lets a caller skip building a name for spans that do not record. */
WEFT_EXTERN void weft_span_set_name(weft_span_t *s, const char *name);
/** The span's context, to start children or to inject into an outgoing request. */
WEFT_EXTERN const weft_trace_context_t *weft_span_context(const weft_span_t *span);
/** Whether the span records attributes and will be exported. */
WEFT_EXTERN bool weft_span_is_recording(const weft_span_t *span);

/** Attribute setters: values are copied; a key set twice keeps the last value. Past
 *  WEFT_SPAN_MAX_ATTRS attributes or WEFT_SPAN_STRINGS bytes, attributes are dropped and
 *  counted in dropped_attrs. */
WEFT_EXTERN void weft_span_set_attr_str(weft_span_t *s, const char *key, const char *value);
WEFT_EXTERN void weft_span_set_attr_int(weft_span_t *s, const char *key, int64_t value);
WEFT_EXTERN void weft_span_set_attr_double(weft_span_t *s, const char *key, double value);
WEFT_EXTERN void weft_span_set_attr_bool(weft_span_t *s, const char *key, bool value);
WEFT_EXTERN void weft_span_add_event(weft_span_t *s, const char *name);
WEFT_EXTERN void weft_span_set_status(weft_span_t *s, weft_span_status_t status,
                                      const char *message);
/** Ends the span: exports it when it records, then returns its memory. */
WEFT_EXTERN void weft_span_end(weft_span_t *s);

/* ---- the in-memory exporter ---- */

/** Keeps copies of the last capacity finished spans; thread-safe. NULL on OOM. */
WEFT_EXTERN weft_span_exporter_t *weft_trace_memory_exporter_new(size_t capacity);
/** Spans held now. */
WEFT_EXTERN size_t weft_trace_memory_exporter_count(weft_span_exporter_t *e);
/** Copies the i-th oldest held span into *out (pointers in it refer to the copy's storage,
 *  valid until the exporter is cleared or freed). Returns 0 or WEFT_ERANGE. */
WEFT_EXTERN int weft_trace_memory_exporter_get(weft_span_exporter_t *e, size_t i,
                                               weft_span_data_t *out);
WEFT_EXTERN void weft_trace_memory_exporter_clear(weft_span_exporter_t *e);

/** Lowercase hex of n bytes into out (2n chars, no NUL). */
WEFT_EXTERN void weft_trace_hex(const uint8_t *bytes, size_t n, char *out);

#ifdef __cplusplus
}
#endif
#endif
