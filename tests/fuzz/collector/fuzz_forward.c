/*
 * fuzz_forward.c - the forwarder's encoder (collector/forward.c) against the collector's
 * own OTLP protobuf decoder: arbitrary bytes are decoded; whatever batch comes out is
 * encoded by col_fwd_encode and decoded again.
 *
 * Invariants: the second decode succeeds, refuses no span, and gives the same spans field
 * by field (strings by content: ARRAY and KVLIST text too, so the JSON text is read back
 * into protobuf values exactly); the encoding of that second batch is the same bytes as
 * the first encoding (the encoder is a function of the spans). Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../unit/collector/otlp_req.h"
#include "collector/decode.h"
#include "collector/forward.h"
#include "weft/common.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static weft_arena_t a1, a2;
static bool ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        weft_arena_init(&a1, 64 * 1024, 256u << 20);
        weft_arena_init(&a2, 64 * 1024, 256u << 20);
        ready = true;
    }
    weft_arena_reset(&a1);
    weft_arena_reset(&a2);
    col_batch_t x, y;
    char err[512];
    if (col_otlp_pb_decode(data, size, &a1, &x, err, sizeof(err)) != 0 || x.n == 0) return 0;
    weft_buf_t b1, b2;
    weft_buf_init(&b1, 0);
    weft_buf_init(&b2, 0);
    col_fwd_encode(&b1, x.spans, x.n);
    CHECK(!b1.failed);
    uint8_t *copy = malloc(b1.len ? b1.len : 1); /* exactly sized: ASan sees any overread */
    CHECK(copy);
    memcpy(copy, b1.p, b1.len);
    CHECK(col_otlp_pb_decode(copy, b1.len, &a2, &y, err, sizeof(err)) == 0);
    CHECK(y.rejected == 0);
    x.rejected = 0; /* what the first decode refused was never encoded */
    x.reject_msg[0] = 0;
    CHECK(req_same_batch(&x, &y));
    col_fwd_encode(&b2, y.spans, y.n);
    CHECK(!b2.failed && b2.len == b1.len && memcmp(b1.p, b2.p, b1.len) == 0);
    free(copy);
    weft_buf_free(&b1);
    weft_buf_free(&b2);
    return 0;
}
