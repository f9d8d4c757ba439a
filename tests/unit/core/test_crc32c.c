/*
 * test_crc32c.c - CRC-32C (src/core/crc32c.c): the check value of the standard test vector,
 * RFC 3720's all-zero and all-ones 32-byte vectors, chaining, and the hardware path (when
 * this CPU has one) against the table on every length to 100 at every alignment to 8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/crc32c.h"

static void test_vectors(void **state)
{
    (void)state;
    assert_int_equal(weft_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(weft__crc32c_table(0, "123456789", 9), 0xe3069283u);
    uint8_t z[32] = {0}, o[32];
    memset(o, 0xff, sizeof o);
    assert_int_equal(weft_crc32c(0, z, 32), 0x8a9136aau); /* RFC 3720 B.4 */
    assert_int_equal(weft_crc32c(0, o, 32), 0x62a8ab43u);
    assert_int_equal(weft_crc32c(0, "", 0), 0);
    assert_int_equal(weft_crc32c(weft_crc32c(0, "12345", 5), "6789", 4), 0xe3069283u);
}

static void test_lengths(void **state)
{
    (void)state;
    uint8_t buf[128];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 100; n++) {
            uint32_t a = weft_crc32c(0x1234u, buf + off, n);
            uint32_t b = weft__crc32c_table(0x1234u, buf + off, n);
            if (a != b) fail_msg("offset %zu length %zu: %08x against %08x", off, n, a, b);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors),
                                       cmocka_unit_test(test_lengths)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
