/*
 * fuzz_duration.c - arbitrary bytes as a Go duration ("1m30s"). Checks: an accepted
 * duration is at most 2^53 ms, and written back in Go's form it parses to the same value.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t ms;
    if (weft__duration_parse((const char *)data, size, &ms) != 0) return 0;
    if (ms > (UINT64_C(1) << 53)) abort();
    char s[64];
    snprintf(s, sizeof(s), "%" PRIu64 "ms", ms);
    uint64_t back;
    if (weft__duration_parse(s, strlen(s), &back) != 0 || back != ms) abort();
    return 0;
}
