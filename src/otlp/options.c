/*
 * options.c - the OTLP exporter's options as weft_otlp_exporter_new takes them: the
 * defaults, the checks, the "key=value,..." lists of resource attributes and headers, and
 * the resource those attributes make.
 *
 * Checks come before anything is allocated for the exporter, so a refusal costs nothing to
 * undo, and each names the option and what is wrong in one line; a message about headers
 * never quotes a value (headers carry API keys). The lists have one grammar, written once
 * here and shared with env.c, which reads the same lists from OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_EXPORTER_OTLP_HEADERS: whatever from_env accepts, the exporter accepts too (the
 * fuzzer fuzz_otel_env holds them to that). The resource is encoded once, at creation, in
 * the exporter's encoding (JSON array members or protobuf KeyValue fields), and copied into
 * every request as it is.
 *
 * Pure functions of their arguments: any thread, no state. Out of memory is returned, never
 * an abort.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/errbuf.h"
#include "otlp/otlp_int.h"
#include "weft/otlp.h"
#include "weft/weft.h"

void weft_otlp_options_init(weft_otlp_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 4318;
    o->path = "/v1/traces";
    o->service_name = NULL;
    o->max_queue = 2048;
    o->max_batch = 512;
    o->flush_interval_ms = 1000;
    o->timeout_ms = 10000;
    o->shutdown_timeout_ms = 5000;
    o->max_attempts = 5;
    o->retry_initial_backoff_ms = 1000;
    o->retry_max_backoff_ms = 5000;
}

bool weft__otlp_path_ok(const char *p)
{
    if (p[0] != '/' || strlen(p) > 2048) return false;
    for (; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
    return true;
}

bool weft__otlp_host_ok(const char *h)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, h, addr) == 1 || inet_pton(AF_INET6, h, addr) == 1) return true;
    size_t n = strlen(h);
    if (n > 0 && h[n - 1] == '.') n--;
    if (n == 0 || n > 253) return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-') return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || c == '_' || (c == '-' && label > 0)) {
            if (++label > 63) return false;
        } else {
            return false;
        }
    }
    return h[n - 1] != '-';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* NULL, or what is wrong with s (NULL and "" are empty lists). */
const char *weft__otlp_kvlist_parse(const char *s, kvlist_t *r)
{
    r->n = 0;
    if (!s) return NULL;
    if (strlen(s) > WEFT_OTLP_MAX_RESOURCE_BYTES) return "longer than 4096 bytes";
    char *o = r->text;
    for (const char *p = s, *end; *p; p = *end ? end + 1 : end) {
        end = p + strcspn(p, ",");
        const char *k = p, *ke, *v, *ve = end;
        while (k < end && blank(*k)) k++;
        if (k == end) continue; /* an empty member */
        const char *eq = memchr(k, '=', (size_t)(end - k));
        if (!eq) return "expected key=value between commas";
        for (ke = eq; ke > k && blank(ke[-1]);) ke--;
        if (ke == k) return "a key is empty";
        for (const char *c = k; c < ke; c++)
            if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
                return "keys are printable ASCII without blanks";
        for (v = eq + 1; v < ve && blank(*v);) v++;
        while (ve > v && blank(ve[-1])) ve--;
        if (r->n == WEFT_OTLP_MAX_RESOURCE_ATTRS) return "more than 64 pairs";
        r->key[r->n] = o;
        memcpy(o, k, (size_t)(ke - k));
        o += ke - k;
        *o++ = 0;
        r->value[r->n++] = o;
        for (const char *c = v; c < ve; c++) {
            if (*c == '%') {
                if (ve - c < 3 || hexval(c[1]) < 0 || hexval(c[2]) < 0)
                    return "'%' must start an escape of two hex digits";
                char d = (char)(hexval(c[1]) << 4 | hexval(c[2]));
                if (d == 0) return "a value holds %00";
                *o++ = d;
                c += 2;
            } else if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                return "a value holds a control character (%-encode it)";
            } else {
                *o++ = *c;
            }
        }
        *o++ = 0;
    }
    return NULL;
}

/* Whether key i is given again later in the list (the later one wins). */
bool weft__otlp_kvlist_overridden(const kvlist_t *r, size_t i, bool nocase)
{
    for (size_t j = i + 1; j < r->n; j++)
        if ((nocase ? strcasecmp : strcmp)(r->key[i], r->key[j]) == 0) return true;
    return false;
}

static bool kvlist_has(const kvlist_t *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0) return true;
    return false;
}

static void put_string_attr(weft_buf_t *b, const char *key, const char *value, bool pb)
{
    if (pb) {
        weft__pb_string_kv(b, 1, key, value); /* Resource.attributes */
        return;
    }
    if (b->len) weft_buf_putc(b, ',');
    weft__otlp_json_string_kv(b, key, value);
}

char *weft__otlp_resource_encode(const weft_otlp_options_t *o, kvlist_t *r, bool pb, size_t *len)
{
    weft_buf_t b;
    weft_buf_init(&b, 0);
    put_string_attr(&b, "service.name", o->service_name, pb);
    static const char *const sdk[][2] = {{"telemetry.sdk.name", "weft"},
                                         {"telemetry.sdk.language", "c"},
                                         {"telemetry.sdk.version", WEFT_VERSION}};
    for (size_t i = 0; i < sizeof(sdk) / sizeof(sdk[0]); i++)
        if (!kvlist_has(r, sdk[i][0])) put_string_attr(&b, sdk[i][0], sdk[i][1], pb);
    if (o->service_version && o->service_version[0] && !kvlist_has(r, "service.version"))
        put_string_attr(&b, "service.version", o->service_version, pb);
    for (size_t i = 0; i < r->n; i++)
        if (!weft__otlp_kvlist_overridden(r, i, false) && strcmp(r->key[i], "service.name") != 0)
            put_string_attr(&b, r->key[i], r->value[i], pb);
    free(r);
    return weft_buf_take(&b, len);
}

const char *weft__otlp_headers_check(const kvlist_t *h)
{
    static const char *const own[] = {"content-type", "content-encoding", "content-length",
                                      "transfer-encoding"};
    for (size_t i = 0; i < h->n; i++) {
        const char *k = h->key[i];
        if (strspn(k, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(k))
            return "a header name is not a token";
        for (size_t j = 0; j < sizeof(own) / sizeof(own[0]); j++)
            if (strcasecmp(k, own[j]) == 0)
                return "Content-Type, Content-Encoding, Content-Length and "
                       "Transfer-Encoding are the exporter's";
        for (const char *c = h->value[i]; *c; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
                return "a header value holds a control character";
    }
    return NULL;
}

/* One line in err, for `return bad(...)` from weft__otlp_options_check. */
#define bad(...) weft__errf(err, errlen, WEFT_EINVAL, __VA_ARGS__)

int weft__otlp_options_check(const weft_otlp_options_t *o, kvlist_t **rsp, kvlist_t **hsp,
                             char *err, size_t errlen)
{
    *rsp = *hsp = NULL;
    if (!o) return bad("options: NULL");
    if (!o->host || !weft__otlp_host_ok(o->host))
        return bad("host: expected a numeric IPv4 or IPv6 address or a host name, got \"%.64s\"",
                   o->host ? o->host : "(null)");
    if (o->port == 0) return bad("port: must be 1..65535, got 0");
    if (!o->path || !weft__otlp_path_ok(o->path))
        return bad("path: expected '/' then printable ASCII without spaces (at most 2048 "
                   "bytes), got \"%.64s\"",
                   o->path ? o->path : "(null)");
    if (!o->service_name || !o->service_name[0] || strlen(o->service_name) > 255)
        return bad("service_name: required, 1..255 bytes");
    if (o->max_queue < 1 || o->max_queue > WEFT_OTLP_MAX_QUEUE)
        return bad("max_queue: must be 1..%u, got %zu", WEFT_OTLP_MAX_QUEUE, o->max_queue);
    if (o->max_batch < 1 || o->max_batch > WEFT_OTLP_MAX_BATCH)
        return bad("max_batch: must be 1..%u, got %zu", WEFT_OTLP_MAX_BATCH, o->max_batch);
    if (o->flush_interval_ms < 1 || o->flush_interval_ms > WEFT_OTLP_MAX_TIMEOUT)
        return bad("flush_interval_ms: must be 1..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT,
                   o->flush_interval_ms);
    if (o->timeout_ms < 1 || o->timeout_ms > WEFT_OTLP_MAX_TIMEOUT)
        return bad("timeout_ms: must be 1..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT, o->timeout_ms);
    if (o->shutdown_timeout_ms > WEFT_OTLP_MAX_TIMEOUT)
        return bad("shutdown_timeout_ms: must be 0..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT,
                   o->shutdown_timeout_ms);
    if (o->protocol != WEFT_OTLP_HTTP_JSON && o->protocol != WEFT_OTLP_HTTP_PROTOBUF)
        return bad("protocol: must be WEFT_OTLP_HTTP_JSON or _PROTOBUF, got %d", (int)o->protocol);
    if (o->max_attempts < 1 || o->max_attempts > WEFT_OTLP_MAX_ATTEMPTS)
        return bad("max_attempts: must be 1..%u, got %u", WEFT_OTLP_MAX_ATTEMPTS, o->max_attempts);
    if (o->retry_initial_backoff_ms < 1 || o->retry_initial_backoff_ms > WEFT_OTLP_MAX_TIMEOUT)
        return bad("retry_initial_backoff_ms: must be 1..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT,
                   o->retry_initial_backoff_ms);
    if (o->retry_max_backoff_ms < 1 || o->retry_max_backoff_ms > WEFT_OTLP_MAX_TIMEOUT)
        return bad("retry_max_backoff_ms: must be 1..%u, got %" PRIu64, WEFT_OTLP_MAX_TIMEOUT,
                   o->retry_max_backoff_ms);
    if (o->service_version && strlen(o->service_version) > 255)
        return bad("service_version: at most 255 bytes");
    kvlist_t *rs = malloc(sizeof(*rs));
    if (!rs) return weft__errf(err, errlen, WEFT_ENOMEM, "otlp exporter: out of memory");
    const char *why = weft__otlp_kvlist_parse(o->resource_attributes, rs);
    if (why) { /* a constant string: rs can go first */
        free(rs);
        return bad("resource_attributes: %s", why);
    }
    kvlist_t *hs = malloc(sizeof(*hs));
    why = !hs ? "out of memory" : weft__otlp_kvlist_parse(o->headers, hs);
    if (!why) why = weft__otlp_headers_check(hs);
    if (why) { /* values may be secrets (API keys): the message never quotes them */
        free(rs);
        free(hs);
        return weft__errf(err, errlen, hs ? WEFT_EINVAL : WEFT_ENOMEM, "headers: %s", why);
    }
    *rsp = rs;
    *hsp = hs;
    return 0;
}
