/*
 * observe.h - what the gateway records about each request besides its metrics: a server
 * span (weft/trace.h) and a line of the JSON access log (internal; see observe.c).
 *
 * proxy.c keeps a gw_obs_t in each request's state and calls the hooks below at the points
 * where a decision is taken; observe.c turns them into span attributes and events, and at
 * the end into one log line. Every hook is cheap when the span does not record and the
 * access log is off: a store or a branch.
 */
#ifndef WEFT_GATEWAY_OBSERVE_H
#define WEFT_GATEWAY_OBSERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft/http.h"
#include "weft/trace.h"

struct weft_gateway_s;
struct gw_route_s;

/* The rate limit's verdict on a request (weft.ratelimit, the log's "ratelimit"). */
typedef enum {
    GW_OBS_RL_NONE = 0, /* the route has no rate limit */
    GW_OBS_RL_ALLOWED,
    GW_OBS_RL_REJECTED,
    GW_OBS_RL_SHADOW /* over the limit, let through (shadow: true) */
} gw_obs_rl_t;

/* The breaker's (weft.breaker, the log's "breaker"). */
typedef enum {
    GW_OBS_BR_NONE = 0,      /* no breaker, or not asked (no upstream) */
    GW_OBS_BR_CLOSED,        /* admitted, closed */
    GW_OBS_BR_HALF_OPEN,     /* admitted as a half-open trial */
    GW_OBS_BR_OPEN,          /* refused: open */
    GW_OBS_BR_HALF_OPEN_FULL /* refused: half-open, its trials all out */
} gw_obs_br_t;

#define GW_OBS_TRIED_MAX 384 /* bytes of "host:port host:port ..." kept for the log */

typedef struct gw_obs_s {
    weft_span_t *span;            /* the request's server span; NULL: the gateway has no tracer */
    weft_str_t request_id;        /* X-Request-Id as sent upstream (the client's, or made up) */
    uint64_t bytes_in, bytes_out; /* request and response body bytes passed on */
    const char *error;            /* the last upstream failure's kind (err_kind), or NULL */
    char *tried;                  /* the log's "tried", in the request's arena; NULL: not logged */
    uint16_t tried_len;
    uint8_t rl, breaker; /* gw_obs_rl_t, gw_obs_br_t */
    uint8_t tries;       /* tries at an upstream */
    uint8_t retries;     /* of which retries */
    bool no_upstream;    /* no instance to send to (503) */
    bool recording;      /* the span records (sampled or record-only, and the tracer exports) */
    bool tail;           /* record-only: kept at the end by the route's tail rules, or not */
    bool done;           /* gw_obs_end ran */
    int status;          /* the status answered (0: the client left before any) */
    char traceparent[WEFT_TRACEPARENT_LEN]; /* sent upstream (the span's context) */
} gw_obs_t;

/* The access log's writer: a thread draining a bounded buffer that workers append lines to. */
typedef struct gw_alog_s gw_alog_t;

/* Opens path ("-": standard output) for appending and starts the writer. Returns 0 and *out,
 * or a WEFT_E* code with err set ("gateway.access_log.path: cannot open X: why"). */
int gw_alog_new(const char *path, gw_alog_t **out, char *err, size_t errlen);
/* Hands one line (newline included; at most the buffer's 1 MiB) to the writer without
 * waiting for it, or drops and counts it when the buffer is full (any thread). */
void gw_alog_write(gw_alog_t *a, const char *line, size_t n);
/* Lines dropped because the buffer was full, or because writing them failed (any thread). */
uint64_t gw_alog_dropped(const gw_alog_t *a);
/* Writes what is buffered, stops the writer and closes the file. NULL is a no-op. */
void gw_alog_free(gw_alog_t *a);

/* At the request's start, once its route is known (NULL: none): the span starts as a child
 * of the incoming trace context (traceparent, else B3), and the log's state is made. */
void gw_obs_begin(struct weft_gateway_s *g, weft_http_request_t *req, const struct gw_route_s *r,
                  gw_obs_t *o);
/* The rate limit's verdict. */
void gw_obs_ratelimit(gw_obs_t *o, gw_obs_rl_t v);
/* The breaker's (gw_policy_allow's answer, and its *open): an admitted request is told
 * apart as a half-open trial only when the span records or the access log is on (that
 * takes the breaker's lock again). */
struct gw_policy_s;
void gw_obs_breaker(struct weft_gateway_s *g, gw_obs_t *o, struct gw_policy_s *p, bool admitted,
                    bool open);
/* A try goes to host:port (attempt 0 is the first). */
void gw_obs_try(gw_obs_t *o, const char *host, uint16_t port, unsigned attempt);
/* A try at host:port failed with err (a WEFT_E* code, kind its name) or answered status, and
 * is retried after backoff_ms (retried) or not (the budget said no). */
void gw_obs_retry(gw_obs_t *o, const char *host, uint16_t port, const char *kind, int status,
                  uint64_t backoff_ms, bool retried);
/* The upstream headers: writes the span's traceparent (kept in o) and tracestate (the
 * span's) into out (room for 2) and returns how many; 0 when there is no span (the
 * client's pass through then). */
size_t gw_obs_inject(gw_obs_t *o, weft_http_header_t *out);
/* The request is over for the gateway (route as matched; host:port the last upstream tried,
 * port 0: none): the span ends, the log line is written. Once. */
void gw_obs_end(struct weft_gateway_s *g, weft_http_request_t *req, const struct gw_route_s *r,
                const char *host, uint16_t port, gw_obs_t *o);

#endif
