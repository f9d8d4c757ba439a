/*
 * fuzz_zipkin_json.c - arbitrary bytes through the Zipkin v2 JSON decoder
 * (col_zipkin_json_decode), and every span it keeps back out through both query encoders.
 *
 * Invariants:
 *   - a refused request (non-zero return) has a message and an empty batch; one refused at
 *     an offset names an offset within the input;
 *   - a refused span is counted and, for the first, named ("span <i>: ...");
 *   - every kept span passes col_span_check and writes (col_zipkin_json_span) as JSON that
 *     jansson accepts;
 *   - the kept spans written as a list decode again with nothing refused, into the same
 *     number of spans with the same ids, kind, times, status, flags and addresses, and
 *     write the same text again: Zipkin's form is a fixed point (what the server returns,
 *     a client may send back);
 *   - the Jaeger encoder takes the batch as a trace and writes JSON jansson accepts.
 * The input is the libFuzzer buffer itself, exactly sized, so ASan catches a read past its
 * end. Any violation aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/decode.h"
#include "collector/encode.h"
#include "core/arena.h"
#include "core/buf.h"
#include "weft/common.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static void check_json(const char *p, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_ALLOW_NUL, &e);
    CHECK(j);
    json_decref(j);
}

/* The kept spans as a Zipkin JSON list (each checked to be JSON on its own). */
static char *write_list(const col_batch_t *b, size_t *len)
{
    weft_buf_t out;
    weft_buf_init(&out, 0);
    weft_buf_putc(&out, '[');
    for (size_t i = 0; i < b->n; i++) {
        if (i) weft_buf_putc(&out, ',');
        size_t from = out.len;
        col_zipkin_json_span(&out, &b->spans[i]);
        CHECK(!out.failed);
        check_json(out.p + from, out.len - from);
    }
    weft_buf_putc(&out, ']');
    char *p = weft_buf_take(&out, len);
    CHECK(p);
    return p;
}

static bool same_endpoint(const col_endpoint_t *a, const col_endpoint_t *b)
{
    return a->has_ipv4 == b->has_ipv4 && a->has_ipv6 == b->has_ipv6 && a->port == b->port &&
           (!a->has_ipv4 || memcmp(a->ipv4, b->ipv4, 4) == 0) &&
           (!a->has_ipv6 || memcmp(a->ipv6, b->ipv6, 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_arena_t a1, a2;
    weft_arena_init(&a1, 4096, 64u << 20);
    weft_arena_init(&a2, 4096, 64u << 20);
    col_batch_t b1, b2;
    char err[256] = "";
    int rc = col_zipkin_json_decode((const char *)data, size, &a1, &b1, err, sizeof(err));
    if (rc) {
        CHECK(rc == WEFT_EINVAL || rc == WEFT_ELIMIT || rc == WEFT_ENOMEM);
        CHECK(err[0] && b1.n == 0 && b1.spans == NULL && b1.rejected == 0);
        if (strncmp(err, "offset ", 7) == 0) CHECK(strtoull(err + 7, NULL, 10) <= size);
        goto out;
    }
    if (b1.rejected) CHECK(strncmp(b1.reject_msg, "span ", 5) == 0);
    for (size_t i = 0; i < b1.n; i++) CHECK(col_span_check(&b1.spans[i]) == NULL);

    size_t len1, len2;
    char *text1 = write_list(&b1, &len1);
    check_json(text1, len1);
    rc = col_zipkin_json_decode(text1, len1, &a2, &b2, err, sizeof(err));
    CHECK(rc == 0 && b2.rejected == 0 && b2.n == b1.n);
    for (size_t i = 0; i < b1.n; i++) {
        const col_span_t *x = &b1.spans[i], *y = &b2.spans[i];
        CHECK(memcmp(x->trace_id, y->trace_id, 16) == 0);
        CHECK(memcmp(x->span_id, y->span_id, 8) == 0);
        CHECK(memcmp(x->parent_id, y->parent_id, 8) == 0);
        CHECK(x->kind == y->kind && x->status == y->status && x->debug == y->debug &&
              x->shared == y->shared);
        CHECK(x->start_ns == y->start_ns && x->end_ns == y->end_ns);
        CHECK(same_endpoint(&x->local, &y->local) && same_endpoint(&x->remote, &y->remote));
        CHECK(y->nattrs <= x->nattrs && y->nevents <= x->nevents); /* duplicates dropped */
    }
    char *text2 = write_list(&b2, &len2);
    CHECK(len1 == len2 && memcmp(text1, text2, len1) == 0);
    free(text2);
    free(text1);

    /* the Jaeger encoder: the batch as one trace (it reorders the array) */
    weft_buf_t j;
    weft_buf_init(&j, 0);
    col_jaeger_json_trace(&j, b1.spans, b1.n);
    CHECK(!j.failed && j.p);
    check_json(j.p, j.len);
    weft_buf_free(&j);
out:
    weft_arena_free(&a1);
    weft_arena_free(&a2);
    return 0;
}
