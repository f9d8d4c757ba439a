/*
 * status.c - names of check states (Consul's words). Any thread; no state.
 */
#include <string.h>

#include "registry/status.h"

static const char *const names[] = {"passing", "warning", "critical", "maintenance"};

const char *weft__health_name(weft_health_t h)
{
    return (unsigned)h < 4 ? names[h] : "critical";
}

int weft__health_parse(const char *s, size_t n, weft_health_t *out)
{
    for (int i = 0; i < 3; i++) {
        if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
            *out = (weft_health_t)i;
            return 0;
        }
    }
    return -1;
}
