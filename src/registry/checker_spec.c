/*
 * checker_spec.c - a check spec, checked and copied on the caller's thread (see
 * checker_int.h).
 *
 * weft_checker_add runs this before it posts, so that a bad target is refused at once with
 * WEFT_EINVAL, and so that the checker's thread only links what arrives: the URL is split
 * (http/url.h, the one splitter), the method, header names and values are held to the
 * syntax the HTTP client will ask of them (http/syntax.h), and a TCP target that is an
 * address is converted now, so its runs need no lookup.
 *
 * Memory: one allocation per check: the weft__check_t, then the header array, then every
 * string (target, method, host, path, header names and values, body), each NUL-terminated.
 * Nothing points outside it, so weft__ckr_free is one free() (plus the body a run may
 * have captured). HTTP checks get Consul's two default headers, User-Agent and Accept,
 * unless the spec gives them.
 *
 * Threads: any; no shared state. Never aborts: ENOMEM is returned.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/syntax.h"
#include "http/url.h"
#include "registry/checker_int.h"
#include "weft/common.h"

static const weft_http_header_t default_headers[] = {
    {{"User-Agent", 10}, {"weft Health Check", 17}},
    {{"Accept", 6}, {"text/plain, text/*, */*", 23}},
};
#define NDEFAULT (sizeof(default_headers) / sizeof(default_headers[0]))

/* The checked pieces of an HTTP spec, pointing into the spec and into u. */
typedef struct parts_s {
    weft__url_t u;
    const char *method;
    size_t method_len, path_len;
    const char *path;
    bool add_default[NDEFAULT];
} parts_t;

/* Fills p from an HTTP spec. Returns 0, WEFT_EINVAL or WEFT_EUNSUPPORTED. */
static int http_parts(const weft_check_spec_t *s, parts_t *p)
{
    const char *bad = weft__url_split(s->target, &p->u);
    if (p->u.scheme && !WEFT__HTTP_IEQ_LIT(p->u.scheme, p->u.scheme_len, "http"))
        return WEFT__HTTP_IEQ_LIT(p->u.scheme, p->u.scheme_len, "https") ? WEFT_EUNSUPPORTED
                                                                         : WEFT_EINVAL;
    if (bad) return WEFT_EINVAL;
    if (!p->u.port) p->u.port = 80;
    p->path = p->u.rest[0] ? p->u.rest : "/";
    p->path_len = strcspn(p->path, "#"); /* a fragment is not sent */
    if (!weft__http_target_clean(p->path, p->path_len)) return WEFT_EINVAL;
    p->method = s->method ? s->method : "GET";
    p->method_len = strlen(p->method);
    if (!weft__http_token(p->method, p->method_len)) return WEFT_EINVAL;
    if (s->n_headers && !s->headers) return WEFT_EINVAL;
    if (s->n_headers > WEFT__CHECK_MAX_HEADERS) return WEFT_EINVAL;
    for (size_t d = 0; d < NDEFAULT; d++) p->add_default[d] = true;
    for (size_t i = 0; i < s->n_headers; i++) {
        const weft_check_header_t *h = &s->headers[i];
        if (!h->name || !h->value) return WEFT_EINVAL;
        size_t nl = strlen(h->name);
        if (!weft__http_token(h->name, nl) || !weft__http_value_clean(h->value, strlen(h->value)) ||
            WEFT__HTTP_IEQ_LIT(h->name, nl, "content-length") ||
            WEFT__HTTP_IEQ_LIT(h->name, nl, "transfer-encoding"))
            return WEFT_EINVAL; /* the client frames the body itself */
        for (size_t d = 0; d < NDEFAULT; d++)
            if (weft__http_ieqn(h->name, nl, default_headers[d].name.base,
                                default_headers[d].name.len))
                p->add_default[d] = false;
    }
    return 0;
}

/* Fills k's address from a TCP spec: "host:port" or "[v6]:port". Returns 0 or
 * WEFT_EINVAL. */
static int tcp_parts(const weft_check_spec_t *s, weft__url_t *u, struct sockaddr_storage *sa,
                     bool *numeric)
{
    if (weft__url_split(s->target, u) != NULL || u->scheme || !u->port || u->rest[0])
        return WEFT_EINVAL;
    *numeric = false;
    memset(sa, 0, sizeof(*sa));
    if (uv_ip4_addr(u->host, u->port, (struct sockaddr_in *)sa) == 0 && !u->bracketed) {
        *numeric = true;
    } else if (uv_ip6_addr(u->host, u->port, (struct sockaddr_in6 *)sa) == 0) {
        *numeric = true;
    } else if (u->bracketed) {
        return WEFT_EINVAL; /* brackets hold an IPv6 address */
    }
    return 0;
}

/* Copies n bytes of s to *at, NUL-terminated; returns the copy and moves *at past it. */
static char *put(char **at, const char *s, size_t n)
{
    char *d = *at;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    *at += n + 1;
    return d;
}

int weft__check_build(const weft_check_spec_t *s, weft_checker_t *owner, weft__check_t **out)
{
    if (!s || !s->target || (s->kind != WEFT_CHECK_HTTP && s->kind != WEFT_CHECK_TCP))
        return WEFT_EINVAL;
    if (s->interval_ms == 0 || s->interval_ms > WEFT__CHECK_MAX_MS ||
        s->timeout_ms > WEFT__CHECK_MAX_MS || (unsigned)s->initial > WEFT_HEALTH_MAINT)
        return WEFT_EINVAL;
    parts_t p;
    struct sockaddr_storage sa;
    bool numeric = false;
    size_t tlen = strlen(s->target);
    size_t need = sizeof(weft__check_t) + tlen + 1, nh = 0, blen = 0;
    int err;
    if (s->kind == WEFT_CHECK_HTTP) {
        if ((err = http_parts(s, &p)) != 0) return err;
        nh = s->n_headers;
        for (size_t d = 0; d < NDEFAULT; d++) nh += p.add_default[d];
        need += nh * sizeof(weft_http_header_t);
        need += p.method_len + 1 + strlen(p.u.host) + 1 + p.path_len + 1;
        for (size_t i = 0; i < s->n_headers; i++)
            need += strlen(s->headers[i].name) + 1 + strlen(s->headers[i].value) + 1;
        if (s->body) need += (blen = strlen(s->body)) + 1;
    } else {
        if ((err = tcp_parts(s, &p.u, &sa, &numeric)) != 0) return err;
        need += strlen(p.u.host) + 1;
    }
    weft__check_t *k = calloc(1, need);
    if (!k) return WEFT_ENOMEM;
    _Static_assert(sizeof(weft__check_t) % alignof(weft_http_header_t) == 0,
                   "the header array follows the struct");
    weft_http_header_t *hs = (weft_http_header_t *)(k + 1);
    char *at = (char *)(hs + nh);
    k->msg.type = WEFT__CHECK_MSG_ADD;
    k->msg.key = s->key;
    k->owner = owner;
    k->state = WEFT__CHECK_QUEUED;
    k->kind = s->kind;
    k->target = put(&at, s->target, tlen);
    k->host = put(&at, p.u.host, strlen(p.u.host));
    k->port = p.u.port;
    if (s->kind == WEFT_CHECK_HTTP) {
        k->method = put(&at, p.method, p.method_len);
        k->path = put(&at, p.path, p.path_len);
        size_t j = 0;
        for (size_t i = 0; i < s->n_headers; i++, j++) {
            const weft_check_header_t *h = &s->headers[i];
            size_t nl = strlen(h->name), vl = strlen(h->value);
            hs[j].name = (weft_str_t){put(&at, h->name, nl), nl};
            hs[j].value = (weft_str_t){put(&at, h->value, vl), vl};
        }
        for (size_t d = 0; d < NDEFAULT; d++)
            if (p.add_default[d]) hs[j++] = default_headers[d];
        k->headers = hs;
        k->nheaders = nh;
        if (s->body) k->body = put(&at, s->body, blen);
        k->body_len = blen;
    } else {
        k->numeric = numeric;
        k->addr = sa;
    }
    k->interval_ns = s->interval_ms * 1000000ull;
    k->timeout_ms = s->timeout_ms ? s->timeout_ms : WEFT__CHECK_TIMEOUT_MS;
    k->succ_need = s->success_before_passing;
    k->warn_need = s->failures_before_warning;
    k->crit_need = s->failures_before_critical;
    k->status = s->initial;
    *out = k;
    return 0;
}

void weft__ckr_free(weft__check_t *k)
{
    if (!k) return;
    free(k->out);
    free(k);
}
