/*
 * errbuf.h - one-line error messages into a caller's buffer (internal).
 *
 * weft's functions that can refuse input take `char *err, size_t errlen` and write one line
 * there saying what is wrong (STYLE: error strings carry context, filled into a caller
 * buffer). This is the one place that formats them.
 */
#ifndef WEFT_CORE_ERRBUF_H
#define WEFT_CORE_ERRBUF_H

#include <stddef.h>

/* Formats fmt into err (errlen bytes, always NUL-terminated, cut to fit; nothing when err is
 * NULL or errlen 0) and returns code, so that callers can `return weft__errf(...)`. Control
 * characters in the result (from quoted input: a value holding '\n') become '?', so the
 * message stays one line. */
int weft__errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
