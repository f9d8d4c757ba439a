/*
 * headers.c - the values of the headers a rate-limited answer carries (weft/ratelimit.h):
 * Retry-After (RFC 9110) and the IETF draft's RateLimit-Policy and RateLimit
 * (draft-ietf-httpapi-ratelimit-headers), formatted once here so that the gateway's 429 and
 * a service's (weft_service_limit) say exactly the same thing.
 *
 *   Retry-After: whole seconds until a call would be admitted, rounded up (a client that
 *                waits that long is admitted; one second less might not be).
 *   RateLimit-Policy: "NAME";q=QUOTA;w=WINDOW: the quota (a token bucket's burst, a
 *                window's limit) and the window in seconds over which it refills (burst /
 *                rate for a bucket, window_ms for a window; rounded up, at least 1).
 *   RateLimit: "NAME";r=REMAINING;t=RESET: calls left now, seconds until the quota is whole.
 *
 * Pure functions; any thread.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "weft/ratelimit.h"

uint64_t weft_ratelimit_policy_window_s(const weft_ratelimit_options_t *o)
{
    uint64_t w = o->kind == WEFT_RATELIMIT_TOKEN_BUCKET
                     ? (uint64_t)ceil((double)o->burst / (o->rate > 0 ? o->rate : 1))
                     : (o->window_ms + 999) / 1000;
    return w ? w : 1;
}

void weft_ratelimit_headers(const weft_ratelimit_options_t *o, const char *name,
                            const weft_ratelimit_result_t *res, weft_ratelimit_headers_t *out)
{
    if (!name) name = "";
    snprintf(out->retry_after, sizeof(out->retry_after), "%" PRIu64,
             (res->retry_after_ms + 999) / 1000);
    snprintf(out->policy, sizeof(out->policy), "\"%s\";q=%" PRIu64 ";w=%" PRIu64, name, res->limit,
             weft_ratelimit_policy_window_s(o));
    snprintf(out->state, sizeof(out->state), "\"%s\";r=%" PRIu64 ";t=%" PRIu64, name,
             res->remaining, res->reset_s);
}
