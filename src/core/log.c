/*
 * log.c - logfmt lines to stderr.
 *
 * Each line is formatted into a stack buffer and written with one write(2), so lines from
 * different threads never interleave (writes to a pipe or tty of < PIPE_BUF are atomic).
 * The level is one atomic int, set at start-up and read by any thread.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/logline.h"
#include "weft/log.h"

static atomic_int log_level = WEFT_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void weft_log_set_level(weft_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

weft_log_level_t weft_log_get_level(void)
{
    return (weft_log_level_t)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int weft_log_level_parse(const char *s, weft_log_level_t *out)
{
    for (int i = 0; i <= WEFT_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (weft_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = WEFT_LOG_WARN;
        return 0;
    }
    return WEFT_EINVAL;
}

char *weft_log_quote(char *out, size_t cap, const char *s, size_t len)
{
    if (cap == 0) return out;
    int needs = len == 0;
    for (size_t i = 0; i < len && !needs; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) needs = 1;
    }
    size_t o = 0;
    if (!needs) {
        o = len < cap - 1 ? len : cap - 1;
        memcpy(out, s, o);
        out[o] = '\0';
        return out;
    }
    static const char hex[] = "0123456789abcdef";
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[4];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c == '\n') {
            esc[n++] = '\\';
            esc[n++] = 'n';
        } else if (c < ' ' || c == 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        if (o + n + 2 > cap) break;
        memcpy(out + o, esc, n);
        o += n;
    }
    if (o + 1 < cap) out[o++] = '"';
    out[o < cap ? o : cap - 1] = '\0';
    return out;
}

size_t weft__log_vformat(char *line, weft_log_level_t level, const char *comp, const char *msg,
                         const char *kv, va_list ap)
{
    const size_t cap = WEFT_LOG_LINE_MAX;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char qmsg[1024];
    weft_log_quote(qmsg, sizeof(qmsg), msg, strlen(msg));
    int n = snprintf(line, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], comp, qmsg);
    if (n < 0) return 0;
    size_t len = (size_t)n < cap ? (size_t)n : cap - 1;
    if (kv && *kv && len < cap - 2) {
        line[len++] = ' ';
        int m = vsnprintf(line + len, cap - len, kv, ap);
        if (m > 0) len += (size_t)m < cap - len ? (size_t)m : cap - len - 1;
    }
    static const char cut[] = " truncated=true";
    if (len >= cap - 1)
        len = cap - sizeof(cut) - 1, memcpy(line + len, cut, sizeof(cut) - 1),
        len += sizeof(cut) - 1;
    line[len++] = '\n';
    return len;
}

static void emit(weft_log_level_t level, const char *comp, const char *msg, const char *kv,
                 va_list ap)
{
    char line[WEFT_LOG_LINE_MAX];
    size_t len = weft__log_vformat(line, level, comp, msg, kv, ap);
    if (len == 0) return;
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void weft_log(weft_log_level_t level, const char *comp, const char *msg, const char *kv, ...)
{
    if (level < weft_log_get_level() || level >= WEFT_LOG_OFF) return;
    va_list ap;
    va_start(ap, kv);
    emit(level, comp, msg, kv, ap);
    va_end(ap);
}

void weft_log_always(const char *comp, const char *msg, const char *kv, ...)
{
    va_list ap;
    va_start(ap, kv);
    emit(WEFT_LOG_INFO, comp, msg, kv, ap);
    va_end(ap);
}
