/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of the trace store's blocks (internal).
 *
 * x86-64 machines since 2008 compute it in hardware (SSE4.2's crc32 instruction, eight
 * bytes an instruction); elsewhere a table does it a byte at a time. Chained like zlib's
 * crc32: weft_crc32c(weft_crc32c(0, a, n), b, m) is the checksum of a then b, and
 * weft_crc32c(0, "123456789", 9) is 0xe3069283. Threads: any.
 */
#ifndef WEFT_CORE_CRC32C_H
#define WEFT_CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t weft_crc32c(uint32_t crc, const void *p, size_t n);

/* The same by the table alone, whatever the CPU has (for tests). */
uint32_t weft__crc32c_table(uint32_t crc, const void *p, size_t n);

#endif
