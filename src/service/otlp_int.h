/*
 * otlp_int.h - what the OTLP exporter keeps internal but tests and fuzzers reach.
 */
#ifndef WEFT_OTLP_INT_H
#define WEFT_OTLP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * A Retry-After value (RFC 9110 10.2.3), v[0..n): delay-seconds (digits only) or an
 * IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), with blanks around it allowed. now is the
 * wall clock in seconds since the epoch. Sets *ms to the wait in milliseconds (0 for a date
 * that has passed; seconds beyond 2^32 are taken as 2^32) and returns true; returns false
 * for anything else (the obsolete RFC 850 and asctime date forms included), leaving *ms.
 */
bool weft__otlp_retry_after(const char *v, size_t n, time_t now, uint64_t *ms);

#endif
