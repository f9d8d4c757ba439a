/*
 * error.c - names and descriptions of weft's error codes.
 *
 * Codes are negative errno values or weft's own (below -10000, see weft/common.h).
 * Pure functions over constant tables; any thread. Also weft__errf (core/errbuf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/errbuf.h"
#include "weft/common.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} own[] = {
    {WEFT_EPARSE, "EPARSE", "malformed input"},
    {WEFT_ELIMIT, "ELIMIT", "limit reached"},
    {WEFT_ECLOSED, "ECLOSED", "closed"},
    {WEFT_ESTATE, "ESTATE", "not valid in the current state"},
    {WEFT_EUNSUPPORTED, "EUNSUPPORTED", "not supported"},
    {WEFT_ETIMEDOUT_CONNECT, "ETIMEDOUT_CONNECT", "connect timed out"},
    {WEFT_ETIMEDOUT_HEAD, "ETIMEDOUT_HEAD", "response head timed out"},
    {WEFT_ETIMEDOUT_BODY, "ETIMEDOUT_BODY", "response body timed out between reads"},
    {WEFT_EBREAKER, "EBREAKER", "circuit breaker open"},
};

static const struct {
    int code;
    const char *name;
} errnos[] = {
    {EINVAL, "EINVAL"},
    {ENOMEM, "ENOMEM"},
    {ERANGE, "ERANGE"},
    {ETIMEDOUT, "ETIMEDOUT"},
    {ENOENT, "ENOENT"},
    {EEXIST, "EEXIST"},
    {EAGAIN, "EAGAIN"},
    {ECANCELED, "ECANCELED"},
    {ECONNRESET, "ECONNRESET"},
    {EPIPE, "EPIPE"},
    {ENOSPC, "ENOSPC"},
    {ECONNREFUSED, "ECONNREFUSED"},
    {EADDRINUSE, "EADDRINUSE"},
    {EACCES, "EACCES"},
    {EBADF, "EBADF"},
    {EMFILE, "EMFILE"},
    {ENOTCONN, "ENOTCONN"},
    {EHOSTUNREACH, "EHOSTUNREACH"},
    {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
    {EPROTO, "EPROTO"},
    {EMSGSIZE, "EMSGSIZE"},
};

const char *weft_err_name(int err)
{
    if (err == 0) return "OK";
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (own[i].code == err) return own[i].name;
    for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
        if (-errnos[i].code == err) return errnos[i].name;
    return "EUNKNOWN";
}

const char *weft_strerror(int err)
{
    if (err == 0) return "success";
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (own[i].code == err) return own[i].text;
    if (err < 0 && err > -4096) return strerror(-err); /* glibc: thread-safe, static text */
    return "unknown error";
}

uint64_t weft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t weft_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int weft__errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* One line, whatever the quoted input held: control characters become '?'. */
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    }
    return code;
}
