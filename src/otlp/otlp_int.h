/*
 * otlp_int.h - what the files of the OTLP module share (internal): the exporter's copy of a
 * span (span.c), its two encoders (encode_json.c, encode_pb.c), the options' checks and
 * key=value lists (options.c), which env.c also reads. exporter.c ties them together.
 */
#ifndef WEFT_OTLP_INT_H
#define WEFT_OTLP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/mpsc.h"
#include "weft/http.h"
#include "weft/otlp.h"
#include "weft/trace.h"

/* A finished span as the exporter keeps it: the fields OTLP needs, and one data area for
 * the arrays and strings, sized for this span (a few hundred bytes for a server span,
 * where weft_span_data_t's fixed arrays take about 3 KB). */
typedef struct item_s {
    weft_mpsc_node_t node;
    struct item_s *next; /* pending FIFO (exporter thread) */
    uint64_t queued_ms;  /* uv_now of the exporter loop when it arrived there */
    uint64_t start_ns, end_ns;
    uint8_t trace_id[16], span_id[8], parent_span_id[8];
    uint8_t flags; /* W3C trace flags */
    bool parent_remote;
    uint8_t kind;   /* weft_span_kind_t */
    uint8_t status; /* weft_span_status_t */
    uint16_t tracestate_len;
    uint16_t nattrs, nevents, nevent_attrs;
    unsigned dropped_attrs, dropped_events;
    const char *name, *tracestate, *status_message; /* into data; status_message may be NULL */
    weft_attr_t *attrs;                             /* nattrs, into data */
    weft_span_event_t *events;                      /* nevents, into data */
    weft_attr_t *event_attrs;                       /* nevent_attrs, into data */
    _Alignas(8) char data[];
} item_t;

/* A malloc'd item holding what OTLP needs of src (span.c), or NULL (out of memory); node,
 * next and queued_ms are the caller's to set. Free it with free(). Any thread. */
item_t *weft__otlp_item_new(const weft_span_data_t *src);

/*
 * OTLP/JSON (encode_json.c). weft__otlp_json_batch appends to b an ExportTraceServiceRequest
 * of one ResourceSpans: the resource's attributes (resource: JSON array members, from
 * weft__otlp_resource_encode), scope "weft" at WEFT_VERSION, and the n items from first on
 * (following next). weft__otlp_json_string_kv appends one KeyValue object with a string
 * value. Out of memory marks b failed.
 */
void weft__otlp_json_batch(weft_buf_t *b, const char *resource, const item_t *first, size_t n);
void weft__otlp_json_string_kv(weft_buf_t *b, const char *key, const char *value);

/*
 * OTLP protobuf (encode_pb.c), the wire format of opentelemetry-proto's messages, written
 * straight into a buffer: weft__pb_open writes a length-delimited field's tag and a
 * one-byte length placeholder and returns where its contents start; weft__pb_close sets the
 * length, moving the contents when it needs more than one byte.
 */
size_t weft__pb_open(weft_buf_t *b, unsigned field);
void weft__pb_close(weft_buf_t *b, size_t start);
void weft__pb_bytes(weft_buf_t *b, unsigned field, const void *p, size_t n);
void weft__pb_varint_field(weft_buf_t *b, unsigned field, uint64_t v);
/* fixed64 (double's bits, times) and fixed32 (flags) fields, little-endian. */
void weft__pb_fixed64(weft_buf_t *b, unsigned field, uint64_t v);
void weft__pb_fixed32(weft_buf_t *b, unsigned field, uint32_t v);
/* A KeyValue (field `field`) with a string AnyValue. */
void weft__pb_string_kv(weft_buf_t *b, unsigned field, const char *key, const char *value);
/* A Span message as field 2 of ScopeSpans. */
void weft__otlp_pb_span(weft_buf_t *b, const item_t *d);

/* The same request as weft__otlp_json_batch in protobuf's wire format; resource: the
 * Resource message's KeyValue fields (resource_len bytes). */
void weft__otlp_pb_batch(weft_buf_t *b, const char *resource, size_t resource_len,
                         const item_t *first, size_t n);

/* resource_attributes and headers (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS):
 * "key=value,key=value", like W3C baggage. Blanks around keys and values are dropped,
 * values are %-decoded, empty members are skipped. Keys and decoded values are copied into
 * text (never longer than the list); a key given twice keeps its last value (the users
 * skip the earlier ones). */
_Static_assert(WEFT_OTLP_MAX_HEADERS == WEFT_OTLP_MAX_RESOURCE_ATTRS &&
                   WEFT_OTLP_MAX_HEADER_BYTES == WEFT_OTLP_MAX_RESOURCE_BYTES,
               "one list type holds both");
typedef struct kvlist_s {
    size_t n;
    const char *key[WEFT_OTLP_MAX_RESOURCE_ATTRS], *value[WEFT_OTLP_MAX_RESOURCE_ATTRS];
    char text[WEFT_OTLP_MAX_RESOURCE_BYTES + 2];
} kvlist_t;

/* NULL, or what is wrong with s (NULL and "" are empty lists); fills r. */
const char *weft__otlp_kvlist_parse(const char *s, kvlist_t *r);
/* Whether key i is given again later in the list (the later one wins), in any case when
 * nocase. */
bool weft__otlp_kvlist_overridden(const kvlist_t *r, size_t i, bool nocase);
/* NULL, or what is wrong with the headers of h: names are tokens (RFC 9110), and not the
 * exporter's own (Content-Type, Content-Encoding) or the client's (Content-Length,
 * Transfer-Encoding); values hold no control characters but tab (a %-decoded value could). */
const char *weft__otlp_headers_check(const kvlist_t *h);

/* A numeric IPv4 or IPv6 address, or a DNS name: dot-separated labels of 1..63 letters,
 * digits, '-' (not first or last) or '_' (container and compose service names use it),
 * at most 253 bytes, one trailing dot allowed. */
bool weft__otlp_host_ok(const char *h);
/* '/' then printable ASCII without spaces, at most 2048 bytes. */
bool weft__otlp_path_ok(const char *p);

/*
 * Checks every option of o as weft_otlp_exporter_new documents it, and parses its
 * resource_attributes and headers into *rs and *hs (malloc'd; the caller frees them).
 * Returns 0, or WEFT_EINVAL / WEFT_ENOMEM with one line in err naming the option (a
 * message about headers never quotes them); *rs and *hs are then NULL.
 */
int weft__otlp_options_check(const weft_otlp_options_t *o, kvlist_t **rs, kvlist_t **hs, char *err,
                             size_t errlen);

/*
 * The OTEL_* variables that apply whatever chose the endpoint (env.c), into e (which the
 * caller has filled, e.g. with weft_otlp_options_init): OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL,
 * _COMPRESSION and _HEADERS, and OTEL_RESOURCE_ATTRIBUTES (whose service.name, when it has
 * one, goes to e->service_name; e->o.service_name is left alone). Unset or empty variables
 * change nothing. Returns 0, or WEFT_EINVAL / WEFT_ENOMEM with one line in err naming the
 * variable. weft_otlp_options_from_env reads these through it; so does a service whose
 * endpoint came from a flag (service/settings.c).
 */
int weft__otlp_env_extras(weft_otlp_env_t *e, char *err, size_t errlen);

/* The resource's attributes (malloc'd, *len bytes) as JSON array members, or with pb as
 * the KeyValue fields of a protobuf Resource; frees r; NULL when out of memory.
 * service.name is service_name's; the telemetry.sdk.* defaults and service.version give way
 * to the same keys in resource_attributes. */
char *weft__otlp_resource_encode(const weft_otlp_options_t *o, kvlist_t *r, bool pb, size_t *len);

/*
 * Retrying an export (retry.c), as OTLP/HTTP asks of an exporter; the SDK's exporter and
 * the collector's forwarder both follow it. weft__otlp_transient: a failure worth the same
 * request again later (429, 502, 503, 504, a connection or timeout error; err 0 means an
 * answer with status). weft__otlp_unreachable: nothing listens there, or no such host.
 * weft__otlp_backoff_ms: initial * 1.5^(attempts - 1), at most max, then within +-20% of
 * that and still at most max (attempts made so far, >= 1). weft__otlp_retry_after: the
 * answer's Retry-After in ms for a status >= 300, -1 when there is none or it is malformed.
 * weft__otlp_failure_name: "http_503" or the error's name, for logs and counters.
 */
bool weft__otlp_transient(int err, int status);
bool weft__otlp_unreachable(int err);
uint64_t weft__otlp_backoff_ms(uint64_t initial_ms, uint64_t max_ms, unsigned attempts);
int64_t weft__otlp_retry_after(int status, const weft_http_header_t *h, size_t n);
void weft__otlp_failure_name(char *out, size_t cap, int err, int status);

#endif
