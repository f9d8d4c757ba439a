/*
 * ui.c - serves the dashboard's files (ui/ at the repository's root, embedded at build time
 * by src/ui/embed/ui_embed.c into a table: assets.h) on the API port:
 *
 *   GET|HEAD /ui           308 to /ui/ (the page's relative URLs need the slash)
 *   GET|HEAD /ui/          index.html
 *   GET|HEAD /ui/<name>    that file; 404 with a JSON error for a name not in the table
 *
 * Each answer carries its ETag (XXH3-128 of the bytes; the gzip copy's ends in "-gz", since
 * a strong validator names one representation), Cache-Control: no-cache (the names carry no
 * hash, so a browser asks again each time, and If-None-Match makes that a 304 without a
 * body), Vary: Accept-Encoding when a gzip copy exists, and the headers that keep the page
 * to itself: a Content-Security-Policy that allows nothing but this origin (no inline
 * script or style, no frames), X-Content-Type-Options: nosniff, Referrer-Policy:
 * no-referrer. A client whose Accept-Encoding takes gzip gets the gzip copy; it is made at
 * build time, so serving costs a table lookup and one copy into the response.
 *
 * Names are looked up in the table (a binary search): nothing here touches the file system,
 * so no name ("../x", "%2e%2e/x") can reach anything but an embedded file.
 *
 * Threads: handlers run on the API server's worker loops; the table is read-only.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/json_write.h"
#include "ui/assets.h"
#include "ui/ui.h"
#include "weft/weft.h"

#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

static void common_headers(weft_http_request_t *req)
{
    weft_http_response_header(req, "Content-Security-Policy", UI_CSP);
    weft_http_response_header(req, "X-Content-Type-Options", "nosniff");
    weft_http_response_header(req, "Referrer-Policy", "no-referrer");
}

static void respond_error(weft_http_request_t *req, int status, const char *msg)
{
    weft_buf_t b;
    weft_buf_init(&b, 2048);
    weft_buf_puts(&b, "{\"error\":");
    weft_json_put_str(&b, msg, strlen(msg));
    weft_buf_puts(&b, "}\n");
    common_headers(req);
    weft_http_respond(req, status, "application/json", b.p ? b.p : "{}", b.p ? b.len : 2);
    weft_buf_free(&b);
}

static const weft_ui_asset_t *find(const char *name, size_t len)
{
    size_t lo = 0, hi = weft__ui_nassets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = weft__ui_assets[mid].name;
        size_t mlen = strlen(m);
        int c = memcmp(m, name, mlen < len ? mlen : len);
        if (c == 0) c = mlen < len ? -1 : mlen > len ? 1 : 0;
        if (c == 0) return &weft__ui_assets[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Whether a qvalue ("1", "0.5", "0.000") is above 0; a malformed one counts as 1, which is
 * what a client that sends it most likely meant. */
static bool q_positive(const char *p, size_t n)
{
    if (n == 0 || p[0] != '0') return true;
    for (size_t i = 1; i < n; i++)
        if (p[i] >= '1' && p[i] <= '9') return true;
    return false;
}

bool weft__ui_accepts_gzip(weft_str_t v)
{
    int gz = -1, star = -1; /* -1: not named; else whether its q is above 0 */
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.base[i]) || v.base[i] == ',')) i++;
        size_t s = i;
        while (i < v.len && v.base[i] != ',' && v.base[i] != ';' && !is_ows(v.base[i])) i++;
        const char *name = v.base + s;
        size_t nlen = i - s;
        bool pos = true;
        while (i < v.len && v.base[i] != ',') { /* parameters: only q counts */
            while (i < v.len && (is_ows(v.base[i]) || v.base[i] == ';')) i++;
            size_t ps = i;
            while (i < v.len && v.base[i] != ',' && v.base[i] != ';' && !is_ows(v.base[i])) i++;
            if (i - ps >= 2 && (v.base[ps] == 'q' || v.base[ps] == 'Q') && v.base[ps + 1] == '=')
                pos = q_positive(v.base + ps + 2, i - ps - 2);
        }
        if (nlen == 0) continue;
        if ((nlen == 4 && strncasecmp(name, "gzip", 4) == 0) ||
            (nlen == 6 && strncasecmp(name, "x-gzip", 6) == 0))
            gz = pos;
        else if (nlen == 1 && name[0] == '*')
            star = pos;
    }
    return gz >= 0 ? gz == 1 : star == 1;
}

bool weft__ui_etag_matches(weft_str_t v, const char *etag)
{
    size_t elen = strlen(etag);
    size_t i = 0;
    while (i < v.len) {
        while (i < v.len && (is_ows(v.base[i]) || v.base[i] == ',')) i++;
        if (i >= v.len) break;
        if (v.base[i] == '*') return true;
        if (i + 1 < v.len && v.base[i] == 'W' && v.base[i + 1] == '/') i += 2;
        if (i >= v.len || v.base[i] != '"') return false; /* malformed: no match */
        const char *end = memchr(v.base + i + 1, '"', v.len - i - 1);
        if (!end) return false;
        size_t tlen = (size_t)(end - (v.base + i)) + 1;
        if (tlen == elen && memcmp(v.base + i, etag, elen) == 0) return true;
        i += tlen;
    }
    return false;
}

static void serve(weft_http_request_t *req, const weft_ui_asset_t *a)
{
    bool gz = a->gz && weft__ui_accepts_gzip(weft_http_request_header(req, "Accept-Encoding"));
    char etag[64];
    size_t el = strlen(a->etag); /* "\"...\"": the gzip copy's is "\"...-gz\"" */
    if (gz)
        snprintf(etag, sizeof(etag), "%.*s-gz\"", (int)(el - 1), a->etag);
    else
        snprintf(etag, sizeof(etag), "%s", a->etag);
    common_headers(req);
    weft_http_response_header(req, "ETag", etag);
    weft_http_response_header(req, "Cache-Control", "no-cache");
    if (a->gz) weft_http_response_header(req, "Vary", "Accept-Encoding");
    weft_str_t inm = weft_http_request_header(req, "If-None-Match");
    if (inm.base && weft__ui_etag_matches(inm, etag)) {
        weft_http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    if (gz) weft_http_response_header(req, "Content-Encoding", "gzip");
    weft_http_respond(req, 200, a->type, gz ? a->gz : a->data, gz ? a->gzlen : a->len);
}

static void on_root(weft_http_request_t *req, void *arg)
{
    common_headers(req);
    weft_http_response_header(req, "Location", "/ui/");
    static const char body[] = "{\"location\":\"/ui/\"}\n";
    weft_http_respond(req, 308, "application/json", body, sizeof(body) - 1);
}

static void on_asset(weft_http_request_t *req, void *arg)
{
    weft_str_t name = weft_http_request_param(req, "path");
    if (name.len == 0) name = WEFT_STR("index.html");
    const weft_ui_asset_t *a = find(name.base, name.len);
    if (!a) {
        char msg[300];
        snprintf(msg, sizeof(msg), "path: no file \"%.*s\" in the dashboard",
                 (int)(name.len > 200 ? 200 : name.len), name.base);
        respond_error(req, 404, msg);
        return;
    }
    serve(req, a);
}

int weft_ui_register(weft_service_t *svc, char *err, size_t errlen)
{
    static const struct {
        const char *pattern;
        weft_http_handler_fn fn;
    } routes[] = {{"/ui", on_root}, {"/ui/*path", on_asset}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = weft_service_route(svc, "GET", routes[i].pattern, routes[i].fn, NULL);
        if (rc != 0) {
            snprintf(err, errlen, "ui: route GET %s: %s", routes[i].pattern, weft_strerror(rc));
            return rc;
        }
    }
    return 0;
}
