/*
 * test_head_bytes.c - test_head.c's cases on head.c's byte-by-byte scanners (big-endian
 * builds without SSE2): head.c is compiled into this test with WEFT__HEAD_STEP 1, its
 * weft__head_scan renamed so that the library's (SSE2 here) is not the one called.
 */
#define WEFT__HEAD_STEP 1
#define weft__head_scan head_scan_bytes
#include "http/head.c"

#include "test_head.c"
