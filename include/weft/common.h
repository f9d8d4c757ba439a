/**
 * weft/common.h - what every weft module shares: error codes, string views, export marks.
 *
 * Errors: every function that can fail returns int, 0 on success or a negative code.
 * Codes that match an errno value are that errno negated (WEFT_ENOMEM == -ENOMEM); the
 * rest are weft's own, below -10000. weft_strerror() names any of them.
 * A function that takes a callback and fails never runs the callback.
 */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_EXTERN __attribute__((visibility("default")))

/*
 * libuv's loop, declared here and not by including <uv.h>: uv.h needs POSIX types (such as
 * pthread_rwlock_t) that a plain -std=c11 compilation hides, and a program that only calls
 * weft should not need libuv's headers at all. weft's headers spell the type
 * `struct uv_loop_s *`, which is exactly what uv.h's uv_loop_t names, so a program that does
 * include <uv.h> passes and receives its uv_loop_t * unchanged. They do not repeat uv.h's
 * typedef: a repeated typedef is valid C11 and C++, but an error in C99, and the name belongs
 * to libuv. The declaration is at file scope so that a prototype mentioning the struct refers
 * to this type, not to a new one scoped to the prototype.
 */
struct uv_loop_s;

#define WEFT_EINVAL       (-EINVAL)
#define WEFT_ENOMEM       (-ENOMEM)
#define WEFT_ERANGE       (-ERANGE)
#define WEFT_ETIMEDOUT    (-ETIMEDOUT)
#define WEFT_ENOENT       (-ENOENT)
#define WEFT_EEXIST       (-EEXIST)
#define WEFT_EAGAIN       (-EAGAIN)
#define WEFT_ECANCELED    (-ECANCELED)
#define WEFT_ECONNRESET   (-ECONNRESET)
#define WEFT_EPIPE        (-EPIPE)
#define WEFT_ENOSPC       (-ENOSPC)
#define WEFT_EPARSE       (-10001) /* malformed input */
#define WEFT_ELIMIT       (-10002) /* a configured limit was reached */
#define WEFT_ECLOSED      (-10003) /* the object was closed, or is closing */
#define WEFT_ESTATE       (-10004) /* call not valid in the object's current state */
#define WEFT_EUNSUPPORTED (-10005)
/* The HTTP client's timeouts besides WEFT_ETIMEDOUT (a whole exchange): each is a 504 for a
 * proxy, told apart so it can count which (weft/client.h). */
#define WEFT_ETIMEDOUT_CONNECT (-10006) /* connect (every address) or name lookup */
#define WEFT_ETIMEDOUT_HEAD    (-10007) /* the response head, after the request was sent */
#define WEFT_ETIMEDOUT_BODY    (-10008) /* too long between two reads of the response body */
/* Every instance a call could go to has its circuit breaker open: failed fast, nothing
 * sent (weft/discovery.h). */
#define WEFT_EBREAKER (-10009)

/** The name of error code err ("ENOMEM", "EPARSE", ...); never NULL. */
WEFT_EXTERN const char *weft_err_name(int err);
/** A short description of error code err; never NULL. */
WEFT_EXTERN const char *weft_strerror(int err);

/** A read-only view of bytes owned by someone else; not NUL-terminated in general. */
typedef struct weft_str_s {
    const char *base;
    size_t len;
} weft_str_t;

#define WEFT_STR(lit) ((weft_str_t){(lit), sizeof(lit) - 1})

/** One HTTP header as it appeared on the wire (name case preserved). */
typedef struct weft_http_header_s {
    weft_str_t name;
    weft_str_t value;
} weft_http_header_t;

/** Nanoseconds on a monotonic clock. */
WEFT_EXTERN uint64_t weft_now_ns(void);
/** Nanoseconds since the Unix epoch (wall clock). */
WEFT_EXTERN uint64_t weft_wall_ns(void);

#ifdef __cplusplus
}
#endif
#endif
