/*
 * fuzz_otlp_pb.c - arbitrary bytes through the OTLP protobuf decoder (collector/otlp_pb.c).
 *
 * Invariants: the result is 0, WEFT_EINVAL or WEFT_ELIMIT (the arena is large enough that
 * only the span count can reach a limit); an error leaves an empty batch and a message; a
 * batch's spans all pass col_span_check, their strings (names, keys, string values, trace
 * states) are valid UTF-8 and lie inside the input, or for ARRAY and KVLIST values are
 * one JSON array that the JSON reader accepts; resource and scope are never NULL, and the
 * resource's service is its service.name; decoding again gives the same batch. The input
 * is libFuzzer's exactly sized buffer, so ASan catches any read past its end. Any
 * violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/decode.h"
#include "core/json_read.h"
#include "weft/common.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static const uint8_t *in_p;
static size_t in_n;

static void check_in(col_str_t s)
{
    CHECK(s.n == 0 || ((const uint8_t *)s.p >= in_p && (const uint8_t *)s.p + s.n <= in_p + in_n));
    CHECK(weft_jr_utf8_valid(s.p, s.n));
}

static void check_attrs(const col_attr_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        check_in(a[i].key);
        CHECK(a[i].type <= COL_V_EMPTY);
        if (a[i].type == COL_V_STRING) check_in(a[i].v.s);
        if (a[i].type == COL_V_BYTES)
            CHECK(a[i].v.s.n == 0 || ((const uint8_t *)a[i].v.s.p >= in_p &&
                                      (const uint8_t *)a[i].v.s.p + a[i].v.s.n <= in_p + in_n));
        if (a[i].type == COL_V_ARRAY || a[i].type == COL_V_KVLIST) {
            weft_jr_t r;
            weft_jr_init(&r, a[i].v.s.p, a[i].v.s.n, NULL);
            CHECK(weft_jr_skip(&r) && weft_jr_end(&r));
            CHECK(a[i].v.s.n >= 2 && a[i].v.s.p[0] == '[');
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_p = data;
    in_n = size;
    weft_arena_t a, a2;
    weft_arena_init(&a, 1 << 16, (size_t)1 << 30);
    weft_arena_init(&a2, 1 << 16, (size_t)1 << 30);
    col_batch_t b, b2;
    char err[256] = "", err2[256] = "";
    int rc = col_otlp_pb_decode(data, size, &a, &b, err, sizeof(err));
    CHECK(rc == 0 || rc == WEFT_EINVAL || rc == WEFT_ELIMIT);
    if (rc) {
        CHECK(b.n == 0 && err[0]);
    } else {
        for (size_t i = 0; i < b.n; i++) {
            const col_span_t *s = &b.spans[i];
            CHECK(col_span_check(s) == NULL);
            CHECK(s->resource && s->scope);
            check_in(s->name);
            check_in(s->trace_state);
            check_in(s->status_message);
            check_in(s->scope->name);
            check_in(s->scope->version);
            CHECK(s->kind <= COL_KIND_CONSUMER && s->status <= COL_STATUS_ERROR);
            check_attrs(s->attrs, s->nattrs);
            check_attrs(s->resource->attrs, s->resource->nattrs);
            check_attrs(s->scope->attrs, s->scope->nattrs);
            const col_str_t *svc =
                col_attr_str(s->resource->attrs, s->resource->nattrs, "service.name");
            CHECK(svc ? s->resource->service.p == svc->p && s->resource->service.n == svc->n
                      : s->resource->service.n == 0);
            for (uint32_t k = 0; k < s->nevents; k++) {
                check_in(s->events[k].name);
                check_attrs(s->events[k].attrs, s->events[k].nattrs);
            }
            for (uint32_t k = 0; k < s->nlinks; k++) {
                check_in(s->links[k].trace_state);
                check_attrs(s->links[k].attrs, s->links[k].nattrs);
            }
        }
        CHECK(b.rejected == 0 || strncmp(b.reject_msg, "span ", 5) == 0);
    }
    int rc2 = col_otlp_pb_decode(data, size, &a2, &b2, err2, sizeof(err2));
    CHECK(rc2 == rc && strcmp(err, err2) == 0 && b2.n == b.n && b2.rejected == b.rejected);
    for (size_t i = 0; i < b.n; i++) {
        CHECK(memcmp(b.spans[i].trace_id, b2.spans[i].trace_id, 16) == 0);
        CHECK(b.spans[i].nattrs == b2.spans[i].nattrs);
        for (uint32_t k = 0; k < b.spans[i].nattrs; k++) {
            const col_attr_t *x = &b.spans[i].attrs[k], *y = &b2.spans[i].attrs[k];
            CHECK(x->type == y->type);
            if (x->type == COL_V_ARRAY || x->type == COL_V_KVLIST)
                CHECK(x->v.s.n == y->v.s.n && memcmp(x->v.s.p, y->v.s.p, x->v.s.n) == 0);
        }
    }
    weft_arena_free(&a);
    weft_arena_free(&a2);
    return 0;
}
