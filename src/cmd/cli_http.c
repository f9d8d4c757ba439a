/*
 * cli_http.c - the command line's requests to weft's API, over the project's HTTP client.
 *
 * The commands (cli_registry.c) need a handful of requests each and then exit. They go
 * through weft_http_client, the client the health checker and the OTLP exporter use, on a
 * loop that exists only for one weft__api_run: one HTTP implementation in the project
 * (STYLE.md 14), with its framing (Content-Length, chunked), its name lookup that tries
 * every address, and its four deadlines, rather than a second, blocking one written for
 * the CLI. The loop also lets a command send its requests at once (`weft services` reads
 * two endpoints) and wait for both within one timeout.
 *
 * Every deadline of the client (lookup and connect, head, body, whole request) is set to
 * the API's timeout_ms, so no wait outlasts it (the client checks every 50 ms). Keep-alive
 * is off: nothing would reuse a connection, and with no idle connection left the loop
 * ends as soon as the client is closed, after the last call's on_done.
 *
 * Answers are collected whole, up to 256 MiB. Errors are reported by weft__api_ok in one
 * line that names the URL; an API error carries the API's message ({"error"}, the
 * collector's {"message"} or Jaeger's {"errors": [{"msg"}]}).
 *
 * Memory: what the daemon's bookkeeping does on failure is no concern of a process that is
 * about to print one line and exit; allocation failures still end in an error, not a
 * crash. Threads: the caller's only (its loop runs inside weft__api_run).
 */
#include "cmd/cli_http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include <jansson.h>

#include "core/assert.h"
#include "core/buf.h"
#include "http/url.h"
#include "weft/weft.h"

#define MAX_ANSWER ((size_t)256 << 20)

const char *weft__api_parse(weft__api_t *api, const char *spec)
{
    weft__url_t u;
    const char *why = weft__url_split(spec, &u);
    if (u.scheme && !(u.scheme_len == 4 && strncasecmp(u.scheme, "http", 4) == 0))
        return u.scheme_len == 5 && strncasecmp(u.scheme, "https", 5) == 0
                   ? "https is not supported (weft's HTTP client has no TLS yet)"
                   : "expected [http://]HOST[:PORT]";
    if (why) return why;
    if (strcmp(u.rest, "") != 0 && strcmp(u.rest, "/") != 0)
        return "expected [http://]HOST[:PORT] without a path";
    snprintf(api->host, sizeof(api->host), "%s", u.host);
    api->port = u.port ? u.port : 80;
    bool v6 = strchr(api->host, ':') != NULL;
    snprintf(api->url, sizeof(api->url), "http://%s%s%s:%u", v6 ? "[" : "", api->host,
             v6 ? "]" : "", api->port);
    return NULL;
}

bool weft__api_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
        if (n + (plain ? 1 : 3) >= cap) return false;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = 0;
    return true;
}

typedef struct run_s {
    weft_http_client_t *client;
    size_t pending; /* calls started whose on_done has not run */
} run_t;

typedef struct slot_s {
    weft__api_call_t *c;
    run_t *run;
    weft_buf_t body;
} slot_t;

static void on_head(weft_http_client_call_t *call, int status, const weft_http_header_t *h,
                    size_t n, void *arg)
{
    (void)call;
    slot_t *s = arg;
    s->c->status = status;
    for (size_t i = 0; i < n; i++) {
        static const char name[] = "X-Consul-Index";
        if (h[i].name.len != sizeof(name) - 1 ||
            strncasecmp(h[i].name.base, name, sizeof(name) - 1) != 0)
            continue;
        uint64_t v = 0;
        for (size_t k = 0; k < h[i].value.len && isdigit((unsigned char)h[i].value.base[k]); k++)
            v = v * 10 + (uint64_t)(h[i].value.base[k] - '0');
        s->c->index = v;
    }
}

static void on_body(weft_http_client_call_t *call, const char *data, size_t len, void *arg)
{
    (void)call;
    slot_t *s = arg;
    weft_buf_put(&s->body, data, len); /* past MAX_ANSWER the buffer fails; see on_done */
}

static void on_done(weft_http_client_call_t *call, int err, void *arg)
{
    (void)call;
    slot_t *s = arg;
    s->c->err = err;
    if (err == 0) {
        s->c->resp = weft_buf_take(&s->body, &s->c->resp_len);
        if (!s->c->resp) s->c->err = WEFT_ELIMIT;
    }
    weft_buf_free(&s->body);
    WEFT_ASSERT(s->run->pending > 0);
    if (--s->run->pending == 0) weft_http_client_close(s->run->client, NULL, NULL);
}

int weft__api_run(const weft__api_t *api, weft__api_call_t *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        calls[i].err = calls[i].status = 0;
        calls[i].index = 0;
        calls[i].resp = NULL;
        calls[i].resp_len = 0;
    }
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);

    uv_loop_t loop;
    slot_t *slots = calloc(n ? n : 1, sizeof(*slots));
    int rc = slots ? uv_loop_init(&loop) : WEFT_ENOMEM;
    bool have_loop = rc == 0;
    run_t run = {0};
    if (rc == 0) {
        weft_http_client_options_t o;
        weft_http_client_options_init(&o);
        o.connect_timeout_ms = o.head_timeout_ms = o.body_timeout_ms = o.request_timeout_ms =
            api->timeout_ms;
        o.max_idle_per_host = 0;
        rc = weft_http_client_new(&loop, &o, &run.client);
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) calls[i].err = rc;
    } else {
        weft_http_header_t hdrs[3];
        size_t nh = 0;
        hdrs[nh++] = (weft_http_header_t){WEFT_STR("User-Agent"), WEFT_STR("weft/" WEFT_VERSION)};
        if (api->token && *api->token)
            hdrs[nh++] =
                (weft_http_header_t){WEFT_STR("X-Consul-Token"), {api->token, strlen(api->token)}};
        static const weft_http_client_cbs_t cbs = {
            .on_head = on_head, .on_body = on_body, .on_done = on_done};
        for (size_t i = 0; i < n; i++) {
            weft_http_header_t h[4];
            size_t k = nh;
            memcpy(h, hdrs, nh * sizeof(h[0]));
            if (calls[i].body)
                h[k++] =
                    (weft_http_header_t){WEFT_STR("Content-Type"), WEFT_STR("application/json")};
            weft_http_client_req_t r = {.method = calls[i].method,
                                        .host = api->host,
                                        .port = api->port,
                                        .target = calls[i].target,
                                        .headers = h,
                                        .nheaders = k,
                                        .body = calls[i].body,
                                        .body_len = calls[i].body ? calls[i].body_len : 0};
            slots[i].c = &calls[i];
            slots[i].run = &run;
            weft_buf_init(&slots[i].body, MAX_ANSWER);
            int e = weft_http_client_request(run.client, &r, &cbs, &slots[i], NULL);
            if (e != 0) {
                calls[i].err = e; /* no callback will run for it */
                weft_buf_free(&slots[i].body);
            } else {
                run.pending++;
            }
        }
        if (run.pending == 0) weft_http_client_close(run.client, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = 0;
    }
    if (have_loop) {
        int lc = uv_loop_close(&loop);
        WEFT_ASSERT(lc == 0); /* the client closed every handle before uv_run returned */
        (void)lc;
    }
    free(slots);
    sigaction(SIGPIPE, &old, NULL);
    return rc;
}

void weft__api_call_free(weft__api_call_t *c)
{
    free(c->resp);
    c->resp = NULL;
    c->resp_len = 0;
}

static void fmt_ms(char *out, size_t cap, uint64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(out, cap, "%" PRIu64 " s", ms / 1000);
    else if (ms > 1000)
        snprintf(out, cap, "%.1f s", (double)ms / 1000);
    else
        snprintf(out, cap, "%" PRIu64 " ms", ms);
}

/* A JSON error body's message: weft's API's {"error"}, the collector's {"code", "message"}
 * (google.rpc.Status, a bad parameter) or Jaeger's {"errors": [{"msg"}]} (an unknown
 * trace); NULL when it is none of these. */
static const json_t *json_message(const json_t *j)
{
    const json_t *m = json_object_get(j, "error");
    if (!json_is_string(m)) m = json_object_get(j, "message");
    if (!json_is_string(m))
        m = json_object_get(json_array_get(json_object_get(j, "errors"), 0), "msg");
    return json_is_string(m) ? m : NULL;
}

/* The API's message in body: a JSON error's (json_message), else the first line of the
 * text; printable ASCII and UTF-8 kept, controls made spaces, cut to 300 bytes at a
 * character's start. */
static void api_message(const char *body, size_t len, char *out, size_t cap)
{
    out[0] = 0;
    if (!body || !len) return;
    const char *msg = body;
    size_t mlen = len;
    json_t *j = json_loadb(body, len, 0, NULL);
    const json_t *m = json_is_object(j) ? json_message(j) : NULL;
    if (m) {
        msg = json_string_value(m);
        mlen = json_string_length(m);
    }
    size_t n = mlen < 300 ? mlen : 300, k = 0;
    if (n > cap - 1) n = cap - 1;
    if (n < mlen)
        while (n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80) n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (msg == body && (c == '\n' || c == '\r')) break;
        out[k++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    while (k > 0 && out[k - 1] == ' ') k--;
    out[k] = 0;
    json_decref(j);
}

bool weft__api_ok(const weft__api_t *api, const weft__api_call_t *c)
{
    if (c->err == 0 && c->status >= 200 && c->status < 300) return true;
    char lim[32];
    fmt_ms(lim, sizeof(lim), api->timeout_ms);
    switch (c->err) {
    case 0:
        break;
    case -ECONNREFUSED:
        fprintf(stderr,
                "weft: cannot reach the API at %s: connection refused\n"
                "  (is `weft serve` running there? --api, WEFT_API_ADDR or CONSUL_HTTP_ADDR "
                "name the address)\n",
                api->url);
        return false;
    case WEFT_ENOENT:
        fprintf(stderr, "weft: cannot reach the API at %s: host \"%s\" not found\n", api->url,
                api->host);
        return false;
    case WEFT_ETIMEDOUT_CONNECT:
        fprintf(stderr, "weft: cannot reach the API at %s: no connection within %s (--timeout)\n",
                api->url, lim);
        return false;
    case WEFT_ETIMEDOUT:
    case WEFT_ETIMEDOUT_HEAD:
    case WEFT_ETIMEDOUT_BODY:
        fprintf(stderr, "weft: %s %s%s: no answer within %s (--timeout)\n", c->method, api->url,
                c->target, lim);
        return false;
    case WEFT_ECONNRESET:
        fprintf(stderr, "weft: %s %s%s: the connection closed before the answer was complete\n",
                c->method, api->url, c->target);
        return false;
    case WEFT_EPARSE:
        fprintf(stderr, "weft: %s %s%s: malformed HTTP answer (is that weft's API?)\n", c->method,
                api->url, c->target);
        return false;
    case WEFT_ELIMIT:
        fprintf(stderr, "weft: %s %s%s: answer too large\n", c->method, api->url, c->target);
        return false;
    default:
        fprintf(stderr, "weft: cannot reach the API at %s: %s\n", api->url, weft_strerror(c->err));
        return false;
    }
    char msg[512];
    api_message(c->resp, c->resp_len, msg, sizeof(msg));
    fprintf(stderr, "weft: %s %s%s: %d %s%s%s%s\n", c->method, api->url, c->target, c->status,
            weft_http_status_text(c->status), *msg ? ": " : "", msg,
            c->status == 403 ? " (give the ACL token with --token or CONSUL_HTTP_TOKEN)" : "");
    return false;
}
