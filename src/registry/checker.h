/*
 * checker.h - the active health checker: HTTP and TCP checks on a loop of its own
 * (internal).
 *
 * The checker runs every check it was given at its interval (with jitter, so that checks
 * registered together do not fire together), on its own thread and libuv loop, so that
 * neither a slow check nor ten thousand of them ever delay the API's loops. It applies
 * Consul's thresholds and tells its owner when a check's status changes, and its first result
 * (even one that keeps the status: its output says why).
 *
 * HTTP: method (default GET), headers, body, timeout (default 10 s; Consul's); any 2xx is
 * passing, 429 is warning, anything else (another status, a refused connection, a reset, a
 * timeout) is critical. The output is Consul's kind of line: "HTTP GET http://...: 200 OK
 * Output: <the first bytes of the body>". Connections are kept alive per host:port.
 * Unlike Consul's (Go's client), redirects are not followed: a 3xx is critical.
 * TCP: a connection that is accepted within the timeout is passing, else critical.
 *
 * Thresholds (Consul's StatusHandler): a passing or warning result resets the failure count
 * and counts one success; once successes >= success_before_passing, that result becomes the
 * status. A critical result resets the success count and counts one failure; once failures
 * >= failures_before_critical the status becomes critical, else once failures >=
 * failures_before_warning it becomes warning. 0 means "at once". (Consul's agent reads an
 * unset failures_before_warning as failures_before_critical, so that a check does not turn
 * warning on its first failure; the owner applies that default when it reads a definition.)
 *
 * Threads: new/free on the owner's thread; add/remove from any thread (they post to the
 * checker's loop, copying the spec); on_change runs on the checker's thread.
 */
#ifndef WEFT_REGISTRY_CHECKER_H
#define WEFT_REGISTRY_CHECKER_H

#include <stddef.h>
#include <stdint.h>

#include "registry/status.h"

typedef struct weft_checker_s weft_checker_t;

typedef enum weft_check_kind_e { WEFT_CHECK_HTTP = 1, WEFT_CHECK_TCP = 2 } weft_check_kind_t;

typedef struct weft_check_header_s {
    const char *name, *value;
} weft_check_header_t;

typedef struct weft_check_spec_s {
    uint64_t key;             /* the owner's handle for this check; adding a key again
                                 replaces the check (its counters start over) */
    weft_check_kind_t kind;
    const char *target;       /* HTTP: a URL, "http://127.0.0.1:8080/health"; TCP:
                                 "host:port" ("[::1]:80" for IPv6) */
    const char *method;       /* HTTP; NULL: GET */
    const weft_check_header_t *headers; /* HTTP; n_headers of them */
    size_t n_headers;
    const char *body;         /* HTTP; NULL: none */
    uint64_t interval_ms;     /* > 0 */
    uint64_t timeout_ms;      /* 0: 10000 */
    unsigned success_before_passing, failures_before_warning, failures_before_critical;
    weft_health_t initial;    /* the status the owner shows now (counts start from it) */
} weft_check_spec_t;

/* A status change (on the checker's thread). output is NUL-terminated valid UTF-8, at most
 * 4 KiB with its NUL, valid during the call. It should return quickly (every check waits
 * while it runs). May call weft_checker_add and _remove (they post), never
 * weft_checker_free. */
typedef void (*weft_checker_change_fn)(void *arg, uint64_t key, weft_health_t status,
                                       const char *output);

typedef struct weft_checker_options_s {
    weft_checker_change_fn on_change; /* required */
    void *arg;
    size_t max_checks;                /* default 100000 */
    unsigned max_concurrent;          /* checks in flight at once; default 4096 (the rest
                                         wait their turn and count as late) */
} weft_checker_options_t;

void weft_checker_options_init(weft_checker_options_t *o);

/* Starts the checker's thread. Returns 0 and *out, WEFT_EINVAL, WEFT_ENOMEM, or a libuv
 * error. */
int weft_checker_new(const weft_checker_options_t *o, weft_checker_t **out);

/* Any thread. Checks and copies spec, and posts it to the checker's thread, which adds it
 * (or replaces the check of the same key) in the order the posts were made. Returns 0,
 * WEFT_EINVAL (bad target, method, header or interval; interval or timeout over a year),
 * WEFT_EUNSUPPORTED (an https URL: the client has no TLS), WEFT_ELIMIT (max_checks held or
 * on their way, a replacement of a held key included; or too many posts waiting),
 * WEFT_ENOMEM, WEFT_ECLOSED (freeing). */
int weft_checker_add(weft_checker_t *c, const weft_check_spec_t *spec);

/* Any thread. Stops and forgets the check (a run in flight finishes unreported). Removing
 * an unknown key does nothing. Returns 0, WEFT_ECLOSED, WEFT_ENOMEM, or WEFT_ELIMIT (too
 * many posts waiting for the checker's thread). */
int weft_checker_remove(weft_checker_t *c, uint64_t key);

typedef struct weft_checker_stats_s {
    uint64_t checks;      /* checks held now */
    uint64_t runs;        /* checks run since start */
    uint64_t changes;     /* status changes reported */
    uint64_t skipped;     /* runs not made: the check's previous run was still in flight
                             when it was due, or its start was so late that its next slot
                             had passed too */
    uint64_t late_p99_us; /* p99 of how late runs started after their scheduled time, over
                             the last 10 s */
    uint64_t late_max_us; /* the latest over the last 10 s */
} weft_checker_stats_t;

/* Any thread (relaxed reads; late_* computed by the checker every second). */
weft_checker_stats_t weft_checker_stats(const weft_checker_t *c);

/* Stops the thread (runs in flight are abandoned, unreported) and frees the checker.
 * Owner's thread, not from on_change; add and remove calls made meanwhile return
 * WEFT_ECLOSED, and none may be made after this returns. */
void weft_checker_free(weft_checker_t *c);

#endif
