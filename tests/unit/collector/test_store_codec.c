/*
 * test_store_codec.c - the trace store's record codec (collector/store_codec.c) on damaged
 * input: a block's records cut at every length and with bytes flipped must decode or be
 * refused, never read outside the buffer (ASan) nor ask the arena for more than the input
 * could describe. The CRC stops damage before the codec in the store; this is the second
 * line, for a CRC collision or a bug.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "collector/store_int.h"

static col_attr_t attrs[] = {
    {.key = COL_STR("s"), .type = COL_V_STRING, .v.s = COL_STR("text")},
    {.key = COL_STR("i"), .type = COL_V_INT, .v.i = -5},
    {.key = COL_STR("d"), .type = COL_V_DOUBLE, .v.d = 2.5},
    {.key = COL_STR("b"), .type = COL_V_BOOL, .v.b = true},
    {.key = COL_STR("e"), .type = COL_V_EMPTY},
};
static col_event_t events[] = {{.time_ns = 7, .name = COL_STR("ev"), .attrs = attrs, .nattrs = 2}};
static col_link_t links[] = {{.trace_id = {1}, .span_id = {2}, .attrs = attrs, .nattrs = 1}};
static const col_resource_t res = {.service = COL_STR("svc"), .attrs = attrs, .nattrs = 5};
static const col_scope_t scope = {.name = COL_STR("sc"), .version = COL_STR("1")};

static void encode(st_buf_t *b)
{
    col_span_t sp[3] = {0};
    for (int i = 0; i < 3; i++) {
        sp[i].trace_id[0] = 1;
        sp[i].span_id[0] = (uint8_t)(i + 1);
        sp[i].start_ns = 1000;
        sp[i].end_ns = 2000;
        sp[i].name = COL_STR("op");
        sp[i].remote.service = COL_STR("r");
        sp[i].remote.has_ipv4 = true;
        sp[i].local.has_ipv6 = true;
        sp[i].resource = &res;
        sp[i].scope = &scope;
        sp[i].attrs = attrs;
        sp[i].nattrs = 5;
        sp[i].events = events;
        sp[i].nevents = 1;
        sp[i].links = links;
        sp[i].nlinks = 1;
    }
    memset(b, 0, sizeof *b);
    assert_true(st_encode_spans(b, sp, 3));
}

/* Walks p..p+n as a block payload, decoding every record; the number of spans decoded. */
static int walk(const uint8_t *p, size_t n, weft_arena_t *a)
{
    const uint8_t *end = p + n, *body;
    uint8_t type;
    uint32_t len;
    bool bad, oom;
    int spans = 0;
    col_resource_t r;
    col_scope_t sc;
    while (st_next_record(&p, end, &type, &body, &len, &bad)) {
        col_span_t s = {.resource = &res, .scope = &scope};
        st_span_head_t h;
        switch (type) {
        case ST_REC_RESOURCE:
            (void)st_decode_resource(body, len, a, true, &r, &oom);
            break;
        case ST_REC_SCOPE:
            (void)st_decode_scope(body, len, a, true, &sc, &oom);
            break;
        default:
            (void)st_read_span_head(body, len, &h);
            if (st_decode_span(body, len, a, true, &s, &oom)) spans++;
        }
        weft_arena_reset(a);
    }
    return spans;
}

static void test_roundtrip_and_cuts(void **state)
{
    (void)state;
    st_buf_t b;
    encode(&b);
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1 << 20);
    assert_int_equal(walk(b.p, b.n, &a), 3);
    for (size_t cut = 0; cut < b.n; cut++) {
        /* a copy of exactly cut bytes, so that ASan sees any read past it */
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b.p, cut);
        assert_true(walk(c, cut, &a) < 3);
        free(c);
    }
    weft_arena_free(&a);
    st_buf_free(&b);
}

static void test_flips(void **state)
{
    (void)state;
    st_buf_t b;
    encode(&b);
    weft_arena_t a;
    weft_arena_init(&a, 4096, 1 << 20);
    uint8_t *c = malloc(b.n);
    unsigned seed = 1;
    int refused = 0;
    for (int round = 0; round < 20000; round++) {
        memcpy(c, b.p, b.n);
        int flips = 1 + rand_r(&seed) % 4;
        for (int i = 0; i < flips; i++)
            c[rand_r(&seed) % b.n] ^= (uint8_t)(1 + rand_r(&seed) % 255);
        refused += walk(c, b.n, &a) < 3;
    }
    assert_true(refused > 0); /* the walk does refuse damage; it never crashed */
    free(c);
    weft_arena_free(&a);
    st_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_cuts),
        cmocka_unit_test(test_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
