/*
 * fuzz_retry_after.c - any bytes as a Retry-After value (weft_http_retry_after_parse).
 *
 * Properties: no crash, no read past the input (it is not NUL-terminated). Accepted input is
 * what the contract says: after blanks are dropped, either digits only, giving their value
 * (at most 2^32) in milliseconds, or an IMF-fixdate that formats back to the same text
 * (weekday aside), giving the seconds from `now` to it (at most 2^32), 0 once it has passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = malloc(size ? size : 1);
    if (!v) return 0;
    memcpy(v, data, size);
    uint64_t ms = 0, ms_later = 0;
    const time_t now = 1700000000;
    bool ok = weft_http_retry_after_parse(v, size, now, &ms) == 0;
    bool ok_later = weft_http_retry_after_parse(v, size, now + 1, &ms_later) == 0;
    if (ok != ok_later) abort(); /* the clock never decides the form */
    size_t a = 0, b = size;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (ok && v[a] >= '0' && v[a] <= '9') {
        uint64_t s = 0;
        for (size_t i = a; i < b; i++) {
            if (v[i] < '0' || v[i] > '9') abort();
            if (s < (1ULL << 32)) s = s * 10 + (uint64_t)(v[i] - '0');
        }
        if (s > (1ULL << 32)) s = 1ULL << 32;
        if (ms != s * 1000 || ms_later != ms) abort();
    } else if (ok) {
        if (b - a != 29 || ms % 1000 != 0 || ms_later % 1000 != 0) abort();
        const uint64_t cap = (1ULL << 32) * 1000; /* a date further away is clamped */
        if (ms > 0 && ms < cap && ms_later != ms - 1000) abort(); /* a time, not a delay */
        if (ms > 0 && ms < cap) {
            time_t t = now + (time_t)(ms / 1000);
            struct tm tm;
            char back[64];
            if (!gmtime_r(&t, &tm)) abort();
            size_t n = strftime(back, sizeof(back), "%a, %d %b %Y %H:%M:%S GMT", &tm);
            /* a leap second (:60) is the next minute's :00 */
            if (n != 29 ||
                (memcmp(back + 3, v + a + 3, 26) != 0 && memcmp(v + a + 23, "60", 2) != 0))
                abort();
        }
    } else if (a < b) {
        /* refused: not digits only (nothing else starts with a digit and is taken) */
        bool all_digits = true;
        for (size_t i = a; i < b; i++) all_digits &= v[i] >= '0' && v[i] <= '9';
        if (all_digits) abort();
    }
    free(v);
    return 0;
}
