/*
 * hash.c - the module's one hash function: XXH3 64-bit from libxxhash (Debian's
 * libxxhash-dev), compiled inline here (XXH_INLINE_ALL), so neither libweft nor the daemon
 * links libxxhash at run time; only its header is needed to build. Used for the keys of the
 * rate-limit table and the points of the ring hash.
 *
 * Threads: any (pure functions).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "resilience/res_int.h"

uint64_t weft__res_hash(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

uint64_t weft__res_hash_seed(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}
