/*
 * cli_http.h - the command line's calls to weft's HTTP API (internal to the weft binary).
 *
 * A command names the API once (weft__api_parse), then runs its few requests to the end
 * with weft__api_run: they go out at once, on a loop and HTTP client of their own that
 * live only for that call, and each ends with a status and a body or with an error. Every
 * wait is bounded by the API's timeout. weft__api_ok turns a failed call into one line on
 * stderr that names the URL and carries the API's own error message.
 */
#ifndef WEFT_CMD_CLI_HTTP_H
#define WEFT_CMD_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Where the API is and how to talk to it. */
typedef struct weft__api_s {
    char url[300];       /* "http://host:port" (IPv6 in brackets): for messages */
    char host[256];      /* numeric address or name, without brackets */
    uint16_t port;       /* 1..65535 */
    const char *token;   /* sent as X-Consul-Token; NULL or "" for none */
    uint64_t timeout_ms; /* each call's deadline: lookup, connect, request, answer */
} weft__api_t;

/**
 * Fills api->url, host and port from spec: "host:port", "http://host:port", "[v6]:port",
 * with or without a trailing "/"; without a port, 80 (as for any http URL, and as the
 * consul CLI does). Returns NULL, or what is wrong as a constant phrase (https and other
 * schemes are refused: the client has no TLS).
 */
const char *weft__api_parse(weft__api_t *api, const char *spec);

/** One request and, after weft__api_run, its outcome. */
typedef struct weft__api_call_s {
    const char *method; /* "GET", "PUT" */
    const char *target; /* "/v1/...": path and query, already percent-encoded */
    const char *body;   /* request body, or NULL */
    size_t body_len;
    /* Results. */
    int err;        /* 0 when a whole response came; else the client's error (no answer,
                       a timeout, a broken answer): then status may still be set */
    int status;     /* the response's status; 0 when no head came */
    uint64_t index; /* X-Consul-Index, 0 when absent */
    char *resp;     /* the body, NUL-terminated, malloc'd; NULL when err != 0 */
    size_t resp_len;
} weft__api_call_t;

/**
 * Runs the n calls at once and returns when every one has ended (each within
 * api->timeout_ms). Returns 0 (each call's outcome is in its fields), or a negative error
 * when the loop or client could not be set up (then no call ran and err is set in each).
 * SIGPIPE is ignored while it runs.
 */
int weft__api_run(const weft__api_t *api, weft__api_call_t *calls, size_t n);

/** Frees what weft__api_run stored in c (the body). */
void weft__api_call_free(weft__api_call_t *c);

/**
 * true when c got a whole 2xx answer. Otherwise prints one line on stderr: the URL, then
 * "connection refused" with a hint, a timeout with the limit, or the status and the API's
 * message (its {"error": ...} field when the body is such JSON, else the body's first
 * line), and returns false.
 */
bool weft__api_ok(const weft__api_t *api, const weft__api_call_t *c);

/**
 * Appends s to out, percent-encoded for one path segment or query value (every byte but
 * letters, digits, '-', '.', '_' and '~'), NUL-terminated. Returns false when it does not
 * fit in cap bytes.
 */
bool weft__api_escape(char *out, size_t cap, const char *s);

#endif
