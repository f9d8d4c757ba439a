/*
 * duration.c - Go's time.ParseDuration, as Consul's API reads "10s", "1m30s", "120000ms".
 *
 * A duration is an optional sign and one or more decimal numbers, each with an optional
 * fraction and a unit: "ns", "us" (or "µs"), "ms", "s", "m", "h". "0" alone needs no unit.
 * weft keeps milliseconds: finer parts are rounded down to whole milliseconds (Consul's
 * intervals, timeouts and waits are never finer than that). Negative durations are refused
 * (no API field takes one), and so is anything past 2^53 ms (about 285,000 years): a caller
 * checks its own, smaller bounds afterwards.
 *
 * Pure function, any thread; the fuzzer drives it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "registry/model.h"

#define MAX_MS (UINT64_C(1) << 53)

int weft__duration_parse(const char *s, size_t n, uint64_t *out_ms)
{
    size_t i = 0;
    if (n == 0) return -1;
    if (s[0] == '+') i++;
    if (n - i == 1 && s[i] == '0') {
        *out_ms = 0;
        return 0;
    }
    if (i == n) return -1;
    /* The total is kept as whole ms plus a ns remainder (2^53 ms is 2^73 ns: too much for
     * 64 bits of nanoseconds). */
    uint64_t ms = 0, rem_ns = 0;
    while (i < n) {
        uint64_t whole = 0;
        bool digits = false;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (whole > (UINT64_MAX - 9) / 10) return -1;
            whole = whole * 10 + (uint64_t)(s[i] - '0');
            digits = true;
            i++;
        }
        uint64_t frac = 0, scale = 1; /* fraction = frac / scale */
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                if (scale < UINT64_C(1000000000000000000)) {
                    frac = frac * 10 + (uint64_t)(s[i] - '0');
                    scale *= 10;
                }
                digits = true;
                i++;
            }
        }
        if (!digits) return -1;
        uint64_t unit_ns;
        if (i + 2 <= n && memcmp(s + i, "ns", 2) == 0)
            unit_ns = 1, i += 2;
        else if (i + 2 <= n && memcmp(s + i, "us", 2) == 0)
            unit_ns = 1000, i += 2;
        else if (i + 3 <= n && memcmp(s + i, "\xc2\xb5s", 3) == 0)
            unit_ns = 1000, i += 3;
        else if (i + 3 <= n && memcmp(s + i, "\xce\xbcs", 3) == 0)
            unit_ns = 1000, i += 3;
        else if (i + 2 <= n && memcmp(s + i, "ms", 2) == 0)
            unit_ns = 1000000, i += 2;
        else if (i < n && s[i] == 's')
            unit_ns = UINT64_C(1000000000), i += 1;
        else if (i < n && s[i] == 'm')
            unit_ns = UINT64_C(60000000000), i += 1;
        else if (i < n && s[i] == 'h')
            unit_ns = UINT64_C(3600000000000), i += 1;
        else
            return -1;
        /* whole * unit: in ms and a ns remainder, checking the bound. */
        if (unit_ns >= 1000000) {
            uint64_t per_ms = unit_ns / 1000000;
            if (whole > MAX_MS / per_ms) return -1;
            ms += whole * per_ms;
        } else {
            ms += whole / (1000000 / unit_ns);
            rem_ns += (whole % (1000000 / unit_ns)) * unit_ns;
        }
        /* frac / scale * unit_ns nanoseconds; scale <= 1e18 and frac < scale. */
        if (frac) { /* exactly, in 128 bits: frac < scale <= 10^18, unit_ns < 2^42 */
            uint64_t fns = (uint64_t)((unsigned __int128)frac * unit_ns / scale);
            ms += fns / 1000000;
            rem_ns += fns % 1000000;
        }
        ms += rem_ns / 1000000;
        rem_ns %= 1000000;
        if (ms > MAX_MS) return -1;
    }
    *out_ms = ms;
    return 0;
}
