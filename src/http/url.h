/*
 * url.h - splitting "[scheme://]host[:port][/rest]" (internal).
 *
 * The one URL splitter of libweft: weft_http_client_get and the OTLP exporter's
 * OTEL_EXPORTER_OTLP_*ENDPOINT use it, and so will the gateway's upstream addresses. It only
 * splits; each caller decides which schemes it takes, what the host may be (a name, an
 * address) and what the rest may hold.
 */
#ifndef WEFT_HTTP_URL_H
#define WEFT_HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct weft__url_s {
    const char *scheme; /* into the input, scheme_len bytes; NULL when there is none */
    size_t scheme_len;
    char host[256];   /* brackets removed; 1..255 bytes */
    bool bracketed;   /* the host was in brackets (an IPv6 address, by the caller's check) */
    uint16_t port;    /* 1..65535; 0 when the URL gives none */
    const char *rest; /* into the input: "" or "/path?query#fragment" */
} weft__url_t;

/*
 * Splits url. A scheme is letters, digits, '+', '-' or '.' after a first letter, followed
 * by "://". The host runs to ':', '/', '?', '#' or the end, or is "[...]"; it holds no
 * blanks, control characters, '[', ']', '@' (no user info), '/', '?' or '#'. A port is 1 to 5
 * digits with a value from 1 to 65535. After the host and port comes the end or '/'.
 * Returns NULL, or what is wrong (a constant string: "expected a host", ...). u->scheme is
 * set before anything else is checked, so a caller can refuse a scheme first.
 */
const char *weft__url_split(const char *url, weft__url_t *u);

#endif
