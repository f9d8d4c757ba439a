/**
 * weft/router.h - method + path routing with parameters and a trailing wildcard.
 *
 * Patterns start with '/'; each segment is a literal, ":name" (one whole, non-empty
 * segment), or, last only, "*name" or "*" (the rest of the path, possibly empty).
 * Matching prefers, at every segment, a literal over a parameter over a wildcard, and
 * backtracks when the more specific branch dead-ends. Paths are matched as sent (no
 * percent-decoding); "/a/" and "/a" are different paths.
 *
 * Threads: build the router on one thread before use (or build a new one and publish it as an
 * immutable snapshot); weft_router_match is read-only, allocates nothing and may run on any
 * number of threads at once.
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

/** A new, empty router; NULL when out of memory. Free it with weft_router_free. */
WEFT_EXTERN weft_router_t *weft_router_new(void);

/** Frees the router, its copies of methods and patterns; not the values. NULL is ignored. */
WEFT_EXTERN void weft_router_free(weft_router_t *r);

/**
 * Adds a route; call before the router is shared with other threads.
 *
 * method: an RFC 9110 token of at most 31 bytes ("GET"; case-sensitive, so "get" is
 * another method), or "*" for any method. pattern: starts with '/'; each segment (between
 * slashes, possibly empty) is a literal, ":name" (one whole, non-empty segment), or, last
 * only, "*name" or "*" (the rest of the path after the slash before it, possibly empty:
 * a pattern "/static" + "/" + "*rest" matches "/static/" but not "/static"). Names are
 * [A-Za-z0-9_-]; no name twice in a pattern; literals have no space, control byte, '?' or
 * '#'. Both strings are copied; value is kept as given (the router never touches it).
 *
 * Returns 0; WEFT_EINVAL for a bad method or pattern (or r NULL); WEFT_EEXIST when the same
 * method and pattern exist, or when the pattern has a parameter (or wildcard) where an
 * existing pattern has one with another name ("/a/:id" then "/a/:key/b"); WEFT_ELIMIT past
 * WEFT_ROUTER_MAX_PARAMS parameters (the wildcard counts), WEFT_ROUTER_MAX_PATTERN bytes of
 * pattern or WEFT_ROUTER_MAX_ROUTES routes; WEFT_ENOMEM. On any error the router's routes
 * are unchanged.
 */
WEFT_EXTERN int weft_router_add(weft_router_t *r, const char *method, const char *pattern,
                                void *value);

/**
 * Routes one request. Read-only, allocates nothing; safe on any number of threads at once.
 *
 * method: the request method as sent. path: the request target's path without the query,
 * not percent-decoded ("/a%2Fb" is one segment; "/a/" and "/a" differ). m: filled on every
 * call: on WEFT_ROUTE_FOUND, value and pattern of the route (the pattern string is owned by
 * the router) and the parameters in path order, each a name (owned by the router) and a
 * value pointing into path (a wildcard's value may be empty; an unnamed wildcard is named
 * "*"); otherwise value and pattern NULL and nparams 0.
 *
 * Precedence: at every segment a literal before a parameter before a wildcard; when the
 * more specific branch has no route for the path and method, the next is tried. HEAD takes a
 * pattern's GET route when the pattern has no HEAD route; "*" routes take any method that
 * has no route of its own on that pattern.
 *
 * Returns WEFT_ROUTE_FOUND; WEFT_ROUTE_METHOD_NOT_ALLOWED when some pattern matches the path
 * but none takes the method, writing the Allow header value into allow (cap bytes, may be
 * NULL/0): the methods that would be found for this path, sorted, unique, HEAD whenever GET
 * is there ("DELETE, GET, HEAD"); always NUL-terminated; whole names only, the list cut
 * short when cap is too small (128 bytes hold any list of the standard methods); else
 * WEFT_ROUTE_NOT_FOUND (also for an empty path or one not starting with '/').
 */
WEFT_EXTERN weft_route_result_t weft_router_match(const weft_router_t *r, weft_str_t method,
                                                  weft_str_t path, weft_route_match_t *m,
                                                  char *allow, size_t cap);

/** Calls fn(method, pattern, value, arg) for every route, in the order they were added;
 * method and pattern are the router's copies, valid until weft_router_free. */
WEFT_EXTERN void weft_router_foreach(const weft_router_t *r,
                                     void (*fn)(const char *method, const char *pattern,
                                                void *value, void *arg),
                                     void *arg);

#ifdef __cplusplus
}
#endif
#endif
