/*
 * assert.c - the failure path of WEFT_ASSERT (core/assert.h).
 *
 * Out of line so that an assertion costs its call site one compare and one call. The
 * message goes to stderr with one fprintf (no allocation), then abort() leaves a core and
 * lets a sanitizer print its stack. Only builds with assertions on reach it. Any thread.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/assert.h"

void weft__assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "%s:%d: %s: assertion `%s' failed\n", file, line, func, cond);
    abort();
}
