/*
 * fault_alloc.h - allocation fault injection for tests that compile a module's .c file
 * into themselves: include this, #define malloc/calloc/... to the oom_* functions, include
 * the module, #undef them. alloc_countdown = k makes the k-th allocation from then on
 * fail (0: the next one); -1 never fails. alloc_failures counts the failures injected.
 * Single-threaded use only.
 */
#ifndef WEFT_TESTS_FAULT_ALLOC_H
#define WEFT_TESTS_FAULT_ALLOC_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static long alloc_countdown = -1; /* fail when it reaches 0; -1: never */
static long alloc_failures;

static inline bool should_fail(void)
{
    if (alloc_countdown < 0) return false;
    if (alloc_countdown-- == 0) {
        alloc_failures++;
        return true;
    }
    return false;
}

static inline void *oom_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}
static inline void *oom_calloc(size_t a, size_t b)
{
    return should_fail() ? NULL : calloc(a, b);
}
static inline void *oom_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}
static inline void *oom_aligned_alloc(size_t a, size_t n)
{
    return should_fail() ? NULL : aligned_alloc(a, n);
}
static inline char *oom_strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

#endif
