/**
 * weft/trace.h - trace context (W3C Trace Context, B3), spans, samplers, exporters.
 *
 * Context: weft_trace_context_t carries a trace id, a span id, the sampled flag and the
 * tracestate. It is parsed from and written to headers without allocation; every parser takes
 * a byte view (pointer + length, no NUL needed).
 *
 * Spans: weft_span_start begins a span as a child of an explicit parent context (or a root);
 * weft_span_end hands it to the tracer's exporter. A span belongs to the thread that started
 * it: set its attributes and end it there (ending it on another thread is allowed, as long as
 * no two threads touch it at once). Span memory comes from a per-thread free list, so
 * steady-state tracing allocates nothing. A span that is not sampled, or whose tracer has no
 * exporter, does not record (its setters return at once) but still has a valid context, so
 * propagation works either way.
 *
 * Export: the tracer calls the exporter synchronously from weft_span_end, on the ending
 * thread, with a batch of one span; nothing is queued inside the tracer. An exporter that
 * sends spans over the network copies them into its own bounded queue there, batches them
 * and counts what it drops (a later issue). weft_trace_memory_exporter_* keeps copies in
 * memory (tests, debugging).
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stdbool.h>

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_TRACEPARENT_LEN      55   /* "00-" 32 "-" 16 "-" 2 */
#define WEFT_B3_MAX_LEN           51   /* what weft_b3_format writes at most: 32 "-" 16 "-" 1 */
#define WEFT_TRACESTATE_MAX       512  /* bytes kept; longer tracestate is truncated per W3C */
#define WEFT_TRACESTATE_MEMBERS   32   /* more members: the whole tracestate is invalid */
#define WEFT_SPAN_MAX_ATTRS       32   /* attributes per span */
#define WEFT_SPAN_MAX_EVENTS      16   /* events per span */
#define WEFT_SPAN_MAX_EVENT_ATTRS 32   /* attributes over all the events of a span */
#define WEFT_SPAN_NAME_MAX        128  /* span name, NUL included */
#define WEFT_SPAN_VALUE_MAX       256  /* a string attribute value is cut to 255 bytes */
#define WEFT_SPAN_STRINGS         2048 /* bytes per span for keys, values, event names, status */

#define WEFT_TRACE_FLAG_SAMPLED 0x01

/**
 * A span context as it travels between services. A context is *valid* when both ids are
 * non-zero. B3 can carry a sampling decision without ids (`b3: 0`); such a sampling-only
 * context has all-zero ids: weft_span_start then starts a new trace that follows the decision.
 */
typedef struct weft_trace_context_s {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* W3C trace-flags; only bit 0 (sampled) is kept and written */
    bool remote;   /* came from another process */
    bool deferred; /* B3 ids without a sampling decision: the local root sampler decides */
    uint16_t tracestate_len;
    char tracestate[WEFT_TRACESTATE_MAX]; /* validated W3C tracestate, not NUL-terminated */
} weft_trace_context_t;

/** True when ctx carries a non-zero trace id and span id. */
WEFT_EXTERN bool weft_trace_context_is_valid(const weft_trace_context_t *ctx);

/* ---- W3C traceparent ---- */

/**
 * Parses a traceparent value (surrounding spaces/tabs allowed). Version 00 must be exactly 55
 * characters; a higher version (not ff) needs at least 55, the 56th being '-', and the rest is
 * ignored. Lowercase hex only; all-zero trace or parent ids are invalid. On success the ids
 * and the sampled flag are stored, remote is set and the tracestate emptied (it comes in its
 * own header). Returns 0 or WEFT_EPARSE (then *ctx is unchanged).
 */
WEFT_EXTERN int weft_traceparent_parse(const char *s, size_t len, weft_trace_context_t *ctx);

/**
 * Writes ctx as a version-00 traceparent into out (>= WEFT_TRACEPARENT_LEN bytes, no NUL).
 * Returns WEFT_TRACEPARENT_LEN, or 0 (nothing written) when ctx is not valid.
 */
WEFT_EXTERN size_t weft_traceparent_format(const weft_trace_context_t *ctx, char *out);

/* ---- W3C tracestate ---- */

/**
 * Parses a tracestate value (several header lines already joined with ','). Every member must
 * be a valid key=value (simple or tenant@system keys), keys unique, at most 32 members; empty
 * members and spaces around members are allowed and dropped. Beyond WEFT_TRACESTATE_MAX bytes
 * members are removed, those over 128 bytes first, then from the end (W3C truncation).
 * Returns 0 (ctx's tracestate now holds the normalised list) or WEFT_EPARSE (the tracestate is
 * emptied: an invalid header is dropped entirely).
 */
WEFT_EXTERN int weft_tracestate_parse(const char *s, size_t len, weft_trace_context_t *ctx);

/** The same over n separate header lines, combined as if joined with ','. */
WEFT_EXTERN int weft_tracestate_parse_lines(const weft_str_t *lines, size_t n,
                                            weft_trace_context_t *ctx);

/**
 * Mutates ctx's tracestate as the owner of key: key=value goes first and any older member with
 * that key is removed; members past 32 are dropped from the end, then the W3C truncation rule
 * keeps the list within WEFT_TRACESTATE_MAX. key and value are NUL-terminated. Returns 0 or
 * WEFT_EINVAL (bad key or value; ctx unchanged).
 */
WEFT_EXTERN int weft_tracestate_put(weft_trace_context_t *ctx, const char *key, const char *value);

/** Looks key up in ctx's tracestate: returns true and the value's view (inside ctx). */
WEFT_EXTERN bool weft_tracestate_get(const weft_trace_context_t *ctx, const char *key,
                                     weft_str_t *value);

/* ---- B3 ---- */

/**
 * Parses a `b3` single header: "{trace}-{span}[-{sampling}[-{parent}]]" with a 16- or
 * 32-hex trace id, sampling 0 (deny), 1 (accept) or d (debug, taken as accept), or the
 * sampling state alone ("0", "1", "d"), which yields a sampling-only context. Without a
 * sampling field the decision is deferred (ctx->deferred). Returns 0 or WEFT_EPARSE (then
 * *ctx is unchanged).
 */
WEFT_EXTERN int weft_b3_parse(const char *s, size_t len, weft_trace_context_t *ctx);

/**
 * Writes ctx as a `b3` value into out (>= WEFT_B3_MAX_LEN bytes, no NUL): "{trace}-{span}-{0|1}"
 * (a 16-hex trace id when its high half is zero; no sampling field when deferred), or only
 * "0"/"1" for a sampling-only context. Returns the length written.
 */
WEFT_EXTERN size_t weft_b3_format(const weft_trace_context_t *ctx, char *out);

/* ---- extraction and injection ---- */

/**
 * Looks header name up, ASCII case-insensitively. Returns 1 and sets *value and *len when
 * present, 0 when absent. When the header appears on several lines the getter must join them
 * with ',' (RFC 9110 5.3): that is how a duplicated traceparent is recognised as invalid and
 * how several tracestate lines combine. A getter returning only the first line still works
 * for single-line headers.
 */
typedef int (*weft_trace_getter_fn)(void *arg, const char *name, const char **value, size_t *len);
/** Sets a header (value not NUL-terminated); returns 0 or a negative error. */
typedef int (*weft_trace_setter_fn)(void *arg, const char *name, const char *value, size_t len);

/**
 * Extracts a context: a valid traceparent (with its tracestate), else `b3`, else the
 * X-B3-TraceId/SpanId/ParentSpanId/Sampled/Flags headers (first line of each). The result is
 * a valid context, or a sampling-only one (`b3: 0`, a lone X-B3-Sampled or X-B3-Flags: 1).
 * Returns 0 (ctx->remote set) or WEFT_ENOENT when nothing usable is present (*ctx unchanged).
 */
WEFT_EXTERN int weft_trace_extract(weft_trace_getter_fn get, void *arg, weft_trace_context_t *ctx);

/**
 * The same over the request's header lines as received (names compared case-insensitively):
 * two traceparent lines make it invalid, tracestate lines are combined in order, and for B3
 * the first line of each header wins. One pass, no allocation. Returns 0 or WEFT_ENOENT.
 */
WEFT_EXTERN int weft_trace_extract_headers(const weft_http_header_t *headers, size_t n,
                                           weft_trace_context_t *ctx);

#define WEFT_PROPAGATE_W3C      1u /* traceparent, and tracestate when not empty */
#define WEFT_PROPAGATE_B3       2u /* the single `b3` header */
#define WEFT_PROPAGATE_B3_MULTI 4u /* X-B3-TraceId, X-B3-SpanId, X-B3-Sampled */
#define WEFT_PROPAGATE_ALL      (WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI)
/* Not a format: when a request carries both a valid traceparent and a valid B3 context (ids,
 * not a sampling decision alone), extraction takes B3's. OpenTelemetry's composite
 * propagator lets the last propagator in OTEL_PROPAGATORS that finds a context win, so
 * "tracecontext,b3" prefers B3; weft_propagators_from_env sets this bit for such a list. */
#define WEFT_PROPAGATE_B3_WINS 8u

/** weft_trace_extract_headers looking only at the formats in mask (WEFT_PROPAGATE_*): the
 *  headers of the others are ignored, as if absent. A mask of 0 finds nothing. Without
 *  WEFT_PROPAGATE_B3_WINS a valid traceparent is preferred to B3, as in weft_trace_extract. */
WEFT_EXTERN int weft_trace_extract_headers_mask(const weft_http_header_t *headers, size_t n,
                                                unsigned mask, weft_trace_context_t *ctx);

/**
 * The propagation formats OTEL_PROPAGATORS asks for, a comma-separated list (blanks around
 * names ignored): tracecontext (WEFT_PROPAGATE_W3C), b3 (WEFT_PROPAGATE_B3), b3multi
 * (WEFT_PROPAGATE_B3_MULTI); baggage and none are accepted and add nothing (weft does not
 * carry baggage). When a b3 or b3multi member comes after the last tracecontext member, the
 * mask has WEFT_PROPAGATE_B3_WINS too (OpenTelemetry's last-one-wins extraction order).
 * Returns 1 with *mask set; 0 when the variable is unset or empty (*mask unchanged);
 * WEFT_EINVAL with one line in err naming the variable for any other name (jaeger, xray,
 * ottrace: not built).
 */
WEFT_EXTERN int weft_propagators_from_env(unsigned *mask, char *err, size_t errlen);

/**
 * Writes ctx in the formats of mask through set. A sampling-only context writes no W3C
 * headers (they cannot express it), `b3: 0|1` and X-B3-Sampled only. Returns 0 or the first
 * setter error (the headers set before it stay set).
 */
WEFT_EXTERN int weft_trace_inject(const weft_trace_context_t *ctx, unsigned mask,
                                  weft_trace_setter_fn set, void *arg);

/* ---- ids ---- */

/** Fills id with random bytes from a per-thread xoshiro256** generator seeded by getrandom()
 *  (reseeded in a forked child); never all zero. No lock, no system call after the first. */
WEFT_EXTERN void weft_trace_random_trace_id(uint8_t id[16]);
WEFT_EXTERN void weft_trace_random_span_id(uint8_t id[8]);

/** Lowercase hex of n bytes into out (2n chars, no NUL). */
WEFT_EXTERN void weft_trace_hex(const uint8_t *bytes, size_t n, char *out);

/* ---- samplers (OpenTelemetry's built-ins) ---- */

typedef enum {
    WEFT_SAMPLER_ALWAYS_ON,
    WEFT_SAMPLER_ALWAYS_OFF,
    WEFT_SAMPLER_RATIO,
    WEFT_SAMPLER_RATE_LIMITING, /* at most `rate` new traces per second (Jaeger's
                                   "ratelimiting"), of those ratio lets through */
} weft_sampler_kind_t;

/**
 * A token bucket of trace starts, shared by every thread that asks it (lock-free: one
 * compare-and-swap per decision; GCRA on a theoretical arrival time). It holds at most
 * max(1, rate) tokens, one second's worth, and starts full. Fill it with weft_trace_rate_init;
 * the fields are its own.
 */
typedef struct weft_trace_rate_s {
    uint64_t tat_ns;       /* theoretical arrival time of the next start (atomic) */
    uint64_t interval_ns;  /* 1 s / rate; 0: the bucket never has a token */
    uint64_t tolerance_ns; /* how far ahead of now tat may run: (burst - 1) * interval */
} weft_trace_rate_t;

/** Sets b up for per_second starts a second (0, negative or NaN: none at all; above 1e9:
 *  1e9), full. Not thread-safe: before any thread takes from it. */
WEFT_EXTERN void weft_trace_rate_init(weft_trace_rate_t *b, double per_second);
/** Takes a token at now_ns (a monotonic clock, weft_now_ns()): true when there was one. Any
 *  thread. */
WEFT_EXTERN bool weft_trace_rate_take(weft_trace_rate_t *b, uint64_t now_ns);

/** A sampler is a small value; build it with the functions below. */
typedef struct weft_sampler_s {
    weft_sampler_kind_t root;
    double ratio;      /* for WEFT_SAMPLER_RATIO, in [0, 1]; RATE_LIMITING: asked first */
    bool parent_based; /* follow the parent's sampled flag when there is a parent */
    double rate;       /* for WEFT_SAMPLER_RATE_LIMITING: new traces per second */
    weft_trace_rate_t *limiter; /* RATE_LIMITING: the bucket asked (weft_tracer_new points
                                   its copy at one of its own); NULL: nothing is sampled */
} weft_sampler_t;

WEFT_EXTERN weft_sampler_t weft_sampler_always_on(void);
WEFT_EXTERN weft_sampler_t weft_sampler_always_off(void);
/**
 * TraceIdRatioBased as OpenTelemetry now specifies it: the randomness R is the trace id's
 * rightmost 7 bytes (or an explicit `rv` in the `ot` tracestate member), the rejection
 * threshold T = 2^56 - round(ratio * 2^56), and a trace is sampled when R >= T. Every service
 * decides the same for the same trace, and a higher ratio samples a superset. ratio is
 * clamped to [0, 1] (NaN: 0). The parent's flag is ignored (see parent_based).
 */
WEFT_EXTERN weft_sampler_t weft_sampler_ratio(double ratio);
/**
 * A rate-limiting sampler, as Jaeger's "ratelimiting": at most per_second new traces a
 * second (bursts of up to one second's worth), whatever the traffic. The decision is a token
 * bucket's, not a function of the trace id, so services downstream must follow it
 * (parent-based; wrap it in weft_sampler_parent_based, which weft does everywhere by
 * default). Its ratio is 1; set .ratio below 1 to sample that share first and spend tokens
 * on those only. A tracer made with it owns its bucket (every thread starting spans on the
 * tracer shares it); to ask weft_sampler_should_sample directly, point .limiter at a
 * weft_trace_rate_t of your own. OpenTelemetry names no rate sampler for
 * OTEL_TRACES_SAMPLER, so weft_sampler_from_env does not offer one.
 */
WEFT_EXTERN weft_sampler_t weft_sampler_rate_limiting(double per_second);
/** ParentBased(root) with the default delegates: a parent's sampled flag decides (remote or
 *  local); a root span, or a B3 parent that deferred its decision, goes to root. */
WEFT_EXTERN weft_sampler_t weft_sampler_parent_based(weft_sampler_t root);
/**
 * The sampler OpenTelemetry's environment variables ask for: OTEL_TRACES_SAMPLER, one of
 * always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off,
 * parentbased_traceidratio; for the ratio ones OTEL_TRACES_SAMPLER_ARG, a decimal from 0 to
 * 1 (default 1). Returns 1 with *s set; 0 when OTEL_TRACES_SAMPLER is unset or empty (*s
 * unchanged); WEFT_EINVAL with one line in err naming the variable, when a value is not one
 * of these (OpenTelemetry SDKs log and fall back; weft refuses, as for any bad setting).
 */
WEFT_EXTERN int weft_sampler_from_env(weft_sampler_t *s, char *err, size_t errlen);
/** The decision for a new span of trace_id under parent (NULL for a root). A
 *  rate-limiting root takes a token when it says yes. */
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

/** An attribute. Passed in, its strings are the caller's (copied by the span); in a
 *  weft_span_data_t they point into the span's own storage. */
typedef struct weft_attr_s {
    const char *key;
    weft_attr_type_t type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
} weft_attr_t;

#define WEFT_ATTR_STR(k, x)    ((weft_attr_t){.key = (k), .type = WEFT_ATTR_STRING, .v.s = (x)})
#define WEFT_ATTR_INT(k, x)    ((weft_attr_t){.key = (k), .type = WEFT_ATTR_INT, .v.i = (x)})
#define WEFT_ATTR_DOUBLE(k, x) ((weft_attr_t){.key = (k), .type = WEFT_ATTR_DOUBLE, .v.d = (x)})
#define WEFT_ATTR_BOOL(k, x)   ((weft_attr_t){.key = (k), .type = WEFT_ATTR_BOOL, .v.b = (x)})

typedef struct weft_span_event_s {
    const char *name;
    uint64_t time_ns;         /* Unix epoch nanoseconds */
    const weft_attr_t *attrs; /* nattrs entries, inside the span data's event_attrs */
    unsigned nattrs, dropped_attrs;
} weft_span_event_t;

/** A finished span as exporters see it (read-only; valid during the export call only). */
typedef struct weft_span_data_s {
    const char *service_name;
    weft_span_kind_t kind;
    weft_trace_context_t context; /* this span's context */
    uint8_t parent_span_id[8];    /* all zero for a root span */
    bool parent_remote;
    char name[WEFT_SPAN_NAME_MAX]; /* after the fields a span that does not record keeps */
    uint64_t start_ns, end_ns; /* Unix epoch nanoseconds */
    weft_span_status_t status;
    const char *status_message; /* NULL, or text for an ERROR status */
    weft_attr_t attrs[WEFT_SPAN_MAX_ATTRS];
    unsigned nattrs, dropped_attrs;
    weft_span_event_t events[WEFT_SPAN_MAX_EVENTS];
    unsigned nevents, dropped_events;
    weft_attr_t event_attrs[WEFT_SPAN_MAX_EVENT_ATTRS]; /* storage for the events' attrs */
    unsigned nevent_attrs;
} weft_span_data_t;

/**
 * Where finished spans go. A small value: the tracer copies it.
 * export_spans receives n spans (read-only, valid only during the call) on the thread that
 * ended them, possibly from several threads at once; it returns 0, or a negative error when
 * it could not take them (the tracer counts them as dropped). shutdown (may be NULL) flushes
 * and releases the exporter; the tracer calls it once, from weft_tracer_free.
 */
typedef struct weft_span_exporter_s {
    int (*export_spans)(const weft_span_data_t *const *spans, size_t n, void *arg);
    void (*shutdown)(void *arg);
    void *arg;
} weft_span_exporter_t;

typedef struct weft_tracer_s weft_tracer_t;
typedef struct weft_span_s weft_span_t;

typedef struct weft_tracer_options_s {
    const char *service_name;       /* copied; 1..127 bytes */
    weft_sampler_t sampler;         /* default: parent_based(always_on) */
    weft_span_exporter_t *exporter; /* copied; NULL: spans do not record. After a successful
                                       weft_tracer_new the tracer owns it (shuts it down). */
} weft_tracer_options_t;

/** Fills *o with the defaults above (service "unknown_service"). */
WEFT_EXTERN void weft_tracer_options_init(weft_tracer_options_t *o);
/** Creates a tracer. Returns 0 and *out, WEFT_EINVAL (bad options; the exporter stays the
 *  caller's) or WEFT_ENOMEM. Any thread may start spans on the tracer. */
WEFT_EXTERN int weft_tracer_new(const weft_tracer_options_t *o, weft_tracer_t **out);
/** Spans whose export failed so far (any thread; a relaxed read). */
WEFT_EXTERN uint64_t weft_tracer_dropped(const weft_tracer_t *t);
/** Whether t has an exporter, so that its sampled spans record (false for NULL). A proxy
 *  whose spans can never be seen passes the trace context through instead. */
WEFT_EXTERN bool weft_tracer_exports(const weft_tracer_t *t);
/** Shuts the exporter down and frees the tracer. No span of it may be open, and no thread may
 *  be starting one. NULL is a no-op. */
WEFT_EXTERN void weft_tracer_free(weft_tracer_t *t);

/**
 * Starts a span named name (copied, cut to 127 bytes at a UTF-8 boundary) of kind, child of
 * parent (NULL, or a context that is not valid: a new trace; a sampling-only parent still
 * passes its decision to a parent-based sampler). The parent's tracestate is inherited.
 * Returns the span, or NULL when t is NULL or memory ran out; every span function accepts
 * NULL. The caller must end the span exactly once.
 */
WEFT_EXTERN weft_span_t *weft_span_start(weft_tracer_t *t, const char *name, weft_span_kind_t kind,
                                         const weft_trace_context_t *parent);
/** A caller's sampling decision for one span (weft_span_start_ex). */
typedef enum {
    WEFT_SAMPLING_TRACER = 0,  /* the tracer's sampler decides (weft_span_start) */
    WEFT_SAMPLING_DROP,        /* not sampled: does not record */
    WEFT_SAMPLING_RECORD_ONLY, /* records, but its context says not sampled (children and
                                  upstreams are told 0), and it is exported only when
                                  weft_span_keep is called before it ends: a tail decision */
    WEFT_SAMPLING_SAMPLE,      /* sampled: records and is exported */
} weft_sampling_t;

/**
 * weft_span_start with the decision taken by the caller instead of the tracer's sampler
 * (a gateway's per-route sampling). Without an exporter nothing records, whatever the
 * decision. WEFT_SAMPLING_TRACER is weft_span_start.
 */
WEFT_EXTERN weft_span_t *weft_span_start_ex(weft_tracer_t *t, const char *name,
                                            weft_span_kind_t kind,
                                            const weft_trace_context_t *parent,
                                            weft_sampling_t decision);
/** Keeps a record-only span: it is exported when it ends, with the sampled flag set in the
 *  exported data (the context already propagated keeps its 0). No-op for any other span. */
WEFT_EXTERN void weft_span_keep(weft_span_t *s);
/** Whether the span is record-only and not (yet) kept. */
WEFT_EXTERN bool weft_span_is_record_only(const weft_span_t *s);

/** Renames a recording span (name copied, cut to 127 bytes); OpenTelemetry's UpdateName.
 *  Lets a caller skip building a name for spans that do not record. */
WEFT_EXTERN void weft_span_set_name(weft_span_t *s, const char *name);
/** The span's context (valid until the span ends), to start children or to inject into an
 *  outgoing request. NULL for a NULL span. */
WEFT_EXTERN const weft_trace_context_t *weft_span_context(const weft_span_t *span);
/** Whether the span records attributes and will be exported. */
WEFT_EXTERN bool weft_span_is_recording(const weft_span_t *span);

/** Attribute setters: key and string values are copied (values cut to 255 bytes at a UTF-8
 *  boundary); a key set twice keeps the last value. Past WEFT_SPAN_MAX_ATTRS attributes or
 *  WEFT_SPAN_STRINGS bytes the attribute is dropped and counted in dropped_attrs. */
WEFT_EXTERN void weft_span_set_attr_str(weft_span_t *s, const char *key, const char *value);
WEFT_EXTERN void weft_span_set_attr_int(weft_span_t *s, const char *key, int64_t value);
WEFT_EXTERN void weft_span_set_attr_double(weft_span_t *s, const char *key, double value);
WEFT_EXTERN void weft_span_set_attr_bool(weft_span_t *s, const char *key, bool value);
/** Sets n attributes at once, with the rules above. */
WEFT_EXTERN void weft_span_set_attrs(weft_span_t *s, const weft_attr_t *attrs, size_t n);
/** Adds an event named name (copied) stamped now, with n attributes (copied; NULL/0 for none).
 *  Past WEFT_SPAN_MAX_EVENTS the event is dropped (dropped_events); attributes past
 *  WEFT_SPAN_MAX_EVENT_ATTRS over the span, or past its string bytes, are dropped and counted
 *  in the event's dropped_attrs. */
WEFT_EXTERN void weft_span_add_event(weft_span_t *s, const char *name, const weft_attr_t *attrs,
                                     size_t n);
/** Sets the status as OpenTelemetry says: UNSET is ignored, OK is final, ERROR can be
 *  replaced by OK or by a newer ERROR. message (copied, cut to 255 bytes) is kept for
 *  ERROR only. */
WEFT_EXTERN void weft_span_set_status(weft_span_t *s, weft_span_status_t status,
                                      const char *message);
/** Ends the span: stamps the end time, exports it when it records (a record-only span: when
 *  kept), then returns its memory
 *  (the span and its context must not be used afterwards). */
WEFT_EXTERN void weft_span_end(weft_span_t *s);

/* ---- the in-memory exporter ---- */

/**
 * An exporter keeping deep copies of the first capacity spans it receives (1..1000000); later
 * ones are dropped and counted until weft_trace_memory_exporter_clear. Thread-safe. NULL on
 * OOM or a bad capacity. Free it by handing it to a tracer (weft_tracer_free shuts it down) or
 * with e->shutdown(e->arg).
 */
WEFT_EXTERN weft_span_exporter_t *weft_trace_memory_exporter_new(size_t capacity);
/** Spans held now. */
WEFT_EXTERN size_t weft_trace_memory_exporter_count(weft_span_exporter_t *e);
/** Spans refused because the exporter was full. */
WEFT_EXTERN uint64_t weft_trace_memory_exporter_dropped(weft_span_exporter_t *e);
/** Copies the i-th held span (in export order) into *out; its pointers refer to the
 *  exporter's copy, valid until the exporter is cleared or freed. Returns 0 or WEFT_ERANGE. */
WEFT_EXTERN int weft_trace_memory_exporter_get(weft_span_exporter_t *e, size_t i,
                                               weft_span_data_t *out);
/** Forgets every held span and the drop count. */
WEFT_EXTERN void weft_trace_memory_exporter_clear(weft_span_exporter_t *e);

#ifdef __cplusplus
}
#endif
#endif
