/**
 * weft/log.h - structured, leveled logging in logfmt to stderr.
 *
 * One line per event: `ts=2026-11-25T04:19:14.123Z level=info comp=server msg="listening"
 * addr=127.0.0.1:8500`. The key=value tail is printf-formatted by the caller; values that
 * may hold spaces or quotes go through weft_log_quote() first. Safe from any thread: each
 * line is one write(2).
 */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include "weft/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    WEFT_LOG_DEBUG = 0,
    WEFT_LOG_INFO = 1,
    WEFT_LOG_WARN = 2,
    WEFT_LOG_ERROR = 3,
    WEFT_LOG_OFF = 4
} weft_log_level_t;

/** Sets the least level that is written (default info). Call at start-up. */
WEFT_EXTERN void weft_log_set_level(weft_log_level_t level);
WEFT_EXTERN weft_log_level_t weft_log_get_level(void);
/** Parses "debug", "info", "warn", "error", "off"; returns 0 or WEFT_EINVAL. */
WEFT_EXTERN int weft_log_level_parse(const char *s, weft_log_level_t *out);

/**
 * Writes one line: level, component comp, message msg, then the printf-formatted kv
 * (may be NULL). Lines longer than 4 KiB are cut and end in `truncated=true`.
 */
WEFT_EXTERN void weft_log(weft_log_level_t level, const char *comp, const char *msg, const char *kv,
                          ...) __attribute__((format(printf, 4, 5)));

/**
 * The same line at level info, written whatever the least level is: for logs that have
 * their own switch, such as the access log (comp=access), which `--log-level warn` must
 * not silence when it was asked for.
 */
WEFT_EXTERN void weft_log_always(const char *comp, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 3, 4)));
/**
 * Writes s (len bytes) as a logfmt value into out (size cap), quoted and escaped when
 * needed; returns out. Output is cut to fit and always NUL-terminated.
 */
WEFT_EXTERN char *weft_log_quote(char *out, size_t cap, const char *s, size_t len);

#define WEFT_LOG_ENABLED(lvl) ((lvl) >= weft_log_get_level())
#define weft_debug(comp, msg, ...)                                                                 \
    do {                                                                                           \
        if (WEFT_LOG_ENABLED(WEFT_LOG_DEBUG)) weft_log(WEFT_LOG_DEBUG, comp, msg, __VA_ARGS__);    \
    } while (0)
#define weft_info(comp, msg, ...)  weft_log(WEFT_LOG_INFO, comp, msg, __VA_ARGS__)
#define weft_warn(comp, msg, ...)  weft_log(WEFT_LOG_WARN, comp, msg, __VA_ARGS__)
#define weft_error(comp, msg, ...) weft_log(WEFT_LOG_ERROR, comp, msg, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
