/*
 * test_head_swar.c - test_head.c's cases on head.c's eight-byte (SWAR) scanners, which
 * builds without SSE2 use: head.c is compiled into this test with WEFT__HEAD_STEP 8, its
 * weft__head_scan renamed so that the library's (SSE2 here) is not the one called.
 */
#define WEFT__HEAD_STEP 8
#define weft__head_scan head_scan_swar
#include "http/head.c"

#include "test_head.c"
