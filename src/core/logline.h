/*
 * logline.h - the logfmt line of weft/log.h formatted into a caller's buffer instead of
 * written, for writers that batch lines (the service's access log) (internal).
 */
#ifndef WEFT_CORE_LOGLINE_H
#define WEFT_CORE_LOGLINE_H

#include <stdarg.h>
#include <stddef.h>

#include "weft/log.h"

/* The size of one line at most, newline included (longer ones are cut, as weft_log does). */
#define WEFT_LOG_LINE_MAX 4096

/* Formats the line weft_log(level, comp, msg, kv, ...) would write, newline included, into
 * out (WEFT_LOG_LINE_MAX bytes; no NUL is added). Returns its length (>= 1), or 0 when it
 * could not be formatted. Any thread. */
size_t weft__log_vformat(char *out, weft_log_level_t level, const char *comp, const char *msg,
                         const char *kv, va_list ap);

#endif
