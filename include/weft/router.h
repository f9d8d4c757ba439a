/**
 * weft/router.h - method + path routing with parameters and a trailing wildcard.
 *
 * Patterns start with '/'; each segment is a literal, ":name" (one whole, non-empty
 * segment), or, last only, "*name" or "*" (the rest of the path, possibly empty).
 * Matching prefers, at every segment, a literal over a parameter over a wildcard, and
 * backtracks when the more specific branch dead-ends. Paths are matched as sent (no
 * percent-decoding); "/a/" and "/a" are different paths.
 *
 * Threads: build the router on one thread before use; weft_router_match is read-only,
 * allocates nothing and may run on any number of threads at once.
 */
#ifndef WEFT_ROUTER_H
#define WEFT_ROUTER_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_ROUTER_MAX_PARAMS  16
#define WEFT_ROUTER_MAX_PATTERN 1024
#define WEFT_ROUTER_MAX_ROUTES  4096

typedef struct weft_router_s weft_router_t;

typedef struct weft_route_param_s {
    weft_str_t name;
    weft_str_t value; /* points into the matched path */
} weft_route_param_t;

typedef struct weft_route_match_s {
    void *value;         /* what weft_router_add registered */
    const char *pattern; /* the registered pattern, e.g. "/orders/:id" (owned by the router) */
    unsigned nparams;
    weft_route_param_t params[WEFT_ROUTER_MAX_PARAMS];
} weft_route_match_t;

typedef enum {
    WEFT_ROUTE_FOUND = 0,
    WEFT_ROUTE_NOT_FOUND = 1,
    WEFT_ROUTE_METHOD_NOT_ALLOWED = 2
} weft_route_result_t;

/** A new, empty router; NULL when out of memory. */
WEFT_EXTERN weft_router_t *weft_router_new(void);

/** Frees the router and the patterns it holds (not the values). */
WEFT_EXTERN void weft_router_free(weft_router_t *r);

/**
 * Adds a route. method: a method token ("GET") or "*" for any method.
 * Returns 0; WEFT_EINVAL for a bad pattern or method (the router is unchanged); WEFT_EEXIST
 * when the same method and pattern exist, or when a parameter at the same place has another
 * name; WEFT_ELIMIT past WEFT_ROUTER_MAX_PARAMS parameters, WEFT_ROUTER_MAX_PATTERN bytes
 * or WEFT_ROUTER_MAX_ROUTES routes; WEFT_ENOMEM.
 */
WEFT_EXTERN int weft_router_add(weft_router_t *r, const char *method, const char *pattern,
                                void *value);

/**
 * Matches method and path (without the query). On WEFT_ROUTE_FOUND fills *m. On
 * WEFT_ROUTE_METHOD_NOT_ALLOWED writes the Allow header value ("GET, HEAD, POST": sorted,
 * unique, HEAD whenever GET is there) into allow (cap bytes, NUL-terminated; may be NULL).
 * HEAD requests match GET routes when no HEAD route matches.
 */
WEFT_EXTERN weft_route_result_t weft_router_match(const weft_router_t *r, weft_str_t method,
                                                  weft_str_t path, weft_route_match_t *m,
                                                  char *allow, size_t cap);

/** Calls fn for every route, in the order they were added. */
WEFT_EXTERN void weft_router_foreach(const weft_router_t *r,
                                     void (*fn)(const char *method, const char *pattern,
                                                void *value, void *arg),
                                     void *arg);

#ifdef __cplusplus
}
#endif
#endif
