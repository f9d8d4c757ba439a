/*
 * retry_after.c - the Retry-After header value (weft_http_retry_after_parse, weft/http.h).
 *
 * Used by whatever retries a request a server turned away: the OTLP exporter today, the
 * gateway's retries later. Only the two forms RFC 9110 lets a sender generate today:
 * delay-seconds and IMF-fixdate. A value in neither form is refused and the caller then
 * waits its own backoff: a server's hint is honoured when it is clear, never guessed at.
 *
 * Invariants: reads exactly n bytes of v (it need not be NUL-terminated), allocates
 * nothing, keeps no state; any thread.
 */
#include <stdbool.h>
#include <string.h>

#include "weft/http.h"

#define SECONDS_MAX 4294967296ULL /* about 136 years: longer waits are all "too long" */

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                       /* 0..399 */
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* 0..146096 */
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", exactly: seconds since the epoch in *t. */
static bool imf_fixdate(const char *p, size_t n, int64_t *t)
{
    static const char days[] = "MonTueWedThuFriSatSun";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0)
        return false;
    bool day_ok = false;
    for (int i = 0; i < 7; i++) day_ok |= memcmp(p, days + 3 * i, 3) == 0;
    unsigned mon = 0;
    for (unsigned i = 0; i < 12; i++)
        if (memcmp(p + 8, months + 3 * i, 3) == 0) mon = i + 1;
    unsigned d, y, hh, mm, ss;
    if (!day_ok || mon == 0 || !digits(p + 5, 2, &d) || !digits(p + 12, 4, &y) ||
        !digits(p + 17, 2, &hh) || !digits(p + 20, 2, &mm) || !digits(p + 23, 2, &ss))
        return false;
    unsigned dim = mdays[mon - 1] + (mon == 2 && leap(y));
    if (d < 1 || d > dim || hh > 23 || mm > 59 || ss > 60) return false; /* 60: leap second */
    *t = days_from_civil(y, mon, d) * 86400 + hh * 3600 + mm * 60 + ss;
    return true;
}

int weft_http_retry_after_parse(const char *v, size_t n, time_t now, uint64_t *ms)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n == 0) return WEFT_EINVAL;
    if (v[0] >= '0' && v[0] <= '9') {
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < '0' || v[i] > '9') return WEFT_EINVAL;
            if (s < SECONDS_MAX) s = s * 10 + (uint64_t)(v[i] - '0');
        }
        *ms = (s < SECONDS_MAX ? s : SECONDS_MAX) * 1000;
        return 0;
    }
    int64_t t;
    if (!imf_fixdate(v, n, &t)) return WEFT_EINVAL;
    int64_t d = t - (int64_t)now;
    *ms = d <= 0 ? 0 : (uint64_t)(d < (int64_t)SECONDS_MAX ? d : (int64_t)SECONDS_MAX) * 1000;
    return 0;
}
