/*
 * qs.h - query strings (`a=1&b=x%20y`), read where a handler needs them (internal): the
 * registry's API and the collector's query APIs.
 *
 * weft_qs_parse splits a query into at most WEFT_QS_MAX pairs, pointing into it (nothing
 * is decoded or copied); weft_qs_get finds the first pair of a name; weft_qs_decode
 * percent- and '+'-decodes one value into the caller's buffer. Pure functions, any thread.
 */
#ifndef WEFT_CORE_QS_H
#define WEFT_CORE_QS_H

#include <stdbool.h>
#include <sys/types.h>

#include "weft/common.h"

#define WEFT_QS_MAX 32

typedef struct weft_qs_s {
    weft_str_t k[WEFT_QS_MAX], v[WEFT_QS_MAX];
    int n;
} weft_qs_t;

/* Splits q on '&' (empty members skipped; a member without '=' has an empty value); pairs
 * past WEFT_QS_MAX are ignored. */
void weft_qs_parse(weft_str_t q, weft_qs_t *out);
/* Whether name (as sent: not decoded) is given; *v (may be NULL) gets its first value. */
bool weft_qs_get(const weft_qs_t *q, const char *name, weft_str_t *v);
/* Percent- and '+'-decodes v into out (NUL-terminated). Returns the length, or -1 when it
 * does not fit in cap bytes or holds a bad escape or a NUL. */
ssize_t weft_qs_decode(weft_str_t v, char *out, size_t cap);
/* "name", "name=", "name=true", "name=1": true. */
bool weft_qs_flag(const weft_qs_t *q, const char *name);

#endif
