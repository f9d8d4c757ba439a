/*
 * fuzz_router.c - arbitrary method and path bytes against a fixed router: no crash, and
 * every parameter value found lies inside the path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/router.h"

static weft_router_t *router;
static int vals[8];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!router) {
        router = weft_router_new();
        weft_router_add(router, "GET", "/", &vals[0]);
        weft_router_add(router, "GET", "/a/:x/c", &vals[1]);
        weft_router_add(router, "GET", "/a/b/d", &vals[2]);
        weft_router_add(router, "*", "/s/*rest", &vals[3]);
        weft_router_add(router, "POST", "/o/:id/i/:item", &vals[4]);
        weft_router_add(router, "GET", "/o/new", &vals[5]);
    }
    const uint8_t *sp = memchr(data, ' ', size);
    size_t ml = sp ? (size_t)(sp - data) : 0;
    weft_str_t method = {(const char *)data, ml};
    weft_str_t path = {(const char *)data + (sp ? ml + 1 : 0), size - (sp ? ml + 1 : 0)};
    weft_route_match_t m;
    char allow[64];
    weft_route_result_t r = weft_router_match(router, method, path, &m, allow, sizeof(allow));
    if (r == WEFT_ROUTE_FOUND) {
        if (m.nparams > WEFT_ROUTER_MAX_PARAMS) abort();
        for (unsigned i = 0; i < m.nparams; i++) {
            const char *v = m.params[i].value.base;
            if (v < path.base || v + m.params[i].value.len > path.base + path.len) abort();
        }
    } else if (r == WEFT_ROUTE_METHOD_NOT_ALLOWED) {
        if (strlen(allow) >= sizeof(allow)) abort();
    }
    return 0;
}
