/*
 * request.c - a request's life cycle in the HTTP server: dispatch through the filter
 * pipeline to its handler, finishing, aborting, the events of a request its handler holds,
 * and the request accessors.
 *
 * Design. When the parser has read a message (or a streamed body's head), conn.c calls
 * dispatch outside llhttp: each filter's on_request in order, then the route's handler, or
 * the engine's own answer (404, 405 with Allow, 200 for OPTIONS *). The handler answers at
 * once or holds the request and answers later; request_finish, from the response calls,
 * runs the filters' on_end, then either closes the connection after the response (no
 * keep-alive, or body bytes left unread) or forgets the request (request_reset) and lets
 * conn.c parse the next one. A request a handler holds can be told three things
 * (weft_http_event_t): its client closed, the server shuts down, its timer fired; and it is
 * aborted (on_abort) when the connection dies first.
 *
 * States (server_int.h). The handler machine moves here: H_PENDING -> H_ACTIVE in dispatch,
 * H_ACTIVE -> H_ABORTED in abort_handler, H_ACTIVE -> H_DONE in request_finish (with the
 * response's R_DONE), both back to NONE in request_reset. parse.c makes a request pending;
 * response.c releases an aborted one (H_ABORTED -> H_DONE) and starts responses.
 *
 * Takeover. A handler may take an upgrade request's connection over
 * (weft_http_request_takeover): the request finishes, the socket goes to the handler as a
 * duplicate descriptor, and the connection closes without a shutdown, so the socket stays
 * open for the new protocol.
 *
 * Filters: on_request in order before the handler, on_head in reverse order before a
 * handler's response head (response.c), on_end in reverse order exactly once per request,
 * aborted or not.
 *
 * Threads: the loop thread of the connection's listener only.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server_int.h"
#include "http/syntax.h"

/* The loggers: every filter's on_end, in reverse order, once per request. */
void weft__http_filters_end(conn_t *c, int status, bool aborted)
{
    weft_http_server_t *s = c->l->srv;
    weft_http_request_t *req = &c->x->req;
    for (unsigned i = 0, n = s->nf_end; i < n; i++)
        s->f_end[i].fn(req, status, aborted, s->f_end[i].arg);
}

/* Before the handler: each on_request in order; true when one of them took the request. */
static bool filters_request(conn_t *c)
{
    weft_http_server_t *s = c->l->srv;
    weft_http_request_t *req = &c->x->req;
    for (unsigned i = 0, n = s->nf_request; i < n; i++)
        if (s->f_request[i].fn(req, s->f_request[i].arg) == WEFT_HTTP_DONE) return true;
    return false;
}

/* Just before a handler's response head is written: each on_head, in reverse order. */
void weft__http_filters_head(conn_t *c, int status)
{
    weft_http_server_t *s = c->l->srv;
    weft_http_request_t *req = &c->x->req;
    for (unsigned i = 0, n = s->nf_head; i < n; i++) s->f_head[i].fn(req, status, s->f_head[i].arg);
}

/* The connection or the request failed while a handler holds it: on_end (aborted), on_abort. */
void weft__http_abort_handler(conn_t *c, int status)
{
    if (c->hstate != H_ACTIVE) return;
    weft__http_handler_to(c, H_ABORTED);
    if (c->rtimer) uv_timer_stop(c->rtimer);
    weft__http_filters_end(c, status, true);
    if (c->x->req.on_abort) c->x->req.on_abort(&c->x->req);
}

/* Everything about the request that just ended is forgotten; rbuf keeps unparsed bytes. */
static void request_reset(conn_t *c)
{
    weft_arena_reset(&c->x->arena);
    free(c->x->parked_head);
    c->x->parked_head = NULL;
    memset(&c->x->req, 0, offsetof(weft_http_request_t, on_body));
    c->x->req.on_body = NULL;
    c->x->req.on_drain = NULL;
    c->x->req.on_abort = NULL;
    c->x->req.on_event = NULL;
    c->x->req.status = 0;
    c->x->req.loop = c->l->loop;
    c->nhdr = 0;
    c->hoff = c->x->hoff_inline;
    c->url_len = 0;
    c->in_value = false;
    c->msg_begun = false;
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->body_discard = false;
    c->head_detached = false;
    c->xhdr = NULL;
    c->xlen = c->xcap = 0;
    weft__http_handler_to(c, H_NONE);
    weft__http_resp_to(c, R_NONE);
    c->resp_chunked = false;
    c->message_done = false;
    c->stream_end_pending = false;
    c->msg_start = 0;
    c->err_status = 0;
    c->err_msg = NULL;
    c->drain_wanted = false;
    c->client_closed_told = false;
    c->resp_aborted = false;
}

/* The handler finished the response (or the server did, for errors and 404s). */
void weft__http_request_finish(conn_t *c)
{
    weft_http_request_t *req = &c->x->req;
    WEFT_ASSERT(c->hstate == H_ACTIVE); /* an aborted request is released before */
    c->corked = false;
    weft__http_handler_to(c, H_DONE);
    weft__http_resp_to(c, R_DONE);
    c->served++;
    if (c->rtimer) uv_timer_stop(c->rtimer);
    weft__http_filters_end(c, req->status, c->resp_aborted);
    if (!req->keep_alive || !c->message_done) {
        /* Unread body bytes (an early answer) cannot be told apart from a next request. */
        weft__http_life_to(c, L_ENDING);
    }
    if (c->life == L_ENDING) {
        if (!c->processing) weft__http_flush(c);
        return;
    }
    request_reset(c);
    weft__http_conn_to(c, C_IDLE);
    c->deadline = weft__http_loop_now(c) + c->l->srv->o.idle_timeout_ms;
    if (!c->processing) {
        weft__http_conn_process(c);
    }
}

/* The message (or a streamed body's head) is read: the filters, then the handler. */
void weft__http_dispatch(conn_t *c)
{
    weft_http_request_t *req = &c->x->req;
    weft_http_server_t *s = c->l->srv;
    weft__http_handler_to(c, H_ACTIVE);
    if (s->nf_request && filters_request(c)) return;
    if (req->route) {
        req->route->handler(req, req->route->arg);
        return;
    }
    /* OPTIONS * asks about the server as a whole (RFC 9110 9.3.7): it is up. Load balancers
     * use it as a health check (HAProxy's "option httpchk OPTIONS *"), and want a 2xx. */
    if (req->target.len == 1 && req->target.base[0] == '*') {
        weft_http_respond(req, 200, NULL, NULL, 0);
        return;
    }
    /* No route: 404 or 405, decided again here to build the Allow header. */
    char allow[128];
    weft_route_match_t m;
    weft_route_result_t r =
        weft_router_match(s->router, req->method, req->path, &m, allow, sizeof(allow));
    char body[160];
    if (r == WEFT_ROUTE_METHOD_NOT_ALLOWED) {
        weft_http_response_header(req, "Allow", allow);
        int n = snprintf(body, sizeof(body),
                         "{\"error\":\"method not allowed\",\"allow\":\"%s\"}\n", allow);
        weft_http_respond(req, 405, "application/json", body, (size_t)n);
    } else {
        static const char nf[] = "{\"error\":\"not found\"}\n";
        weft_http_respond(req, 404, "application/json", nf, sizeof(nf) - 1);
    }
}

/* Whether a handler holds the request and has not finished or lost it. */
static inline bool held(const conn_t *c)
{
    return c->hstate == H_ACTIVE && !weft__http_closing(c);
}

/* Tells the handler holding c's request about ev, if it asked to be told (on_event). */
void weft__http_tell(conn_t *c, weft_http_event_t ev)
{
    if (held(c) && c->x->req.on_event) c->x->req.on_event(&c->x->req, ev);
}

/* The client's FIN arrived (or epoll reported it) while a handler holds the request. */
void weft__http_client_closed(conn_t *c)
{
    if (c->client_closed_told || !held(c)) return;
    c->client_closed_told = true;
    weft__http_tell(c, WEFT_HTTP_EVENT_CLIENT_CLOSED);
}

static void on_request_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    weft__http_tell(c, WEFT_HTTP_EVENT_TIMER);
}

static void on_rtimer_closed(uv_handle_t *h)
{
    free(h);
}

/* The connection closes: so does the request's timer, if it was ever armed. */
void weft__http_timer_close(conn_t *c)
{
    if (!c->rtimer) return;
    uv_close((uv_handle_t *)c->rtimer, on_rtimer_closed);
    c->rtimer = NULL;
}

int weft_http_request_timer(weft_http_request_t *req, uint64_t ms)
{
    conn_t *c = weft__http_conn_of(req);
    if (!held(c) || !req->on_event) return WEFT_ESTATE;
    if (!c->rtimer) {
        uv_timer_t *t = malloc(sizeof(*t));
        if (!t) return WEFT_ENOMEM;
        uv_timer_init(c->l->loop, t);
        t->data = c;
        c->rtimer = t;
    }
    uv_timer_start(c->rtimer, on_request_timer, ms, 0);
    return 0;
}

/* The head is copied into a block of its size, and rbuf is given back: it holds nothing but
 * the head (rpos == rlen: no bytes of a next request wait). Reading stops (update_reading:
 * rcap is 0), and the reader's hup hook still tells of the client's FIN; once the request
 * is finished, on_alloc (conn.c) gives the connection a read buffer again. */
int weft_http_request_park(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    if (c->hstate != H_ACTIVE || weft__http_closing(c) || !c->message_done) return WEFT_ESTATE;
    if (!c->rbuf) return 0; /* parked already */
    if (c->rpos != c->rlen) return WEFT_ESTATE;
    if (!c->head_detached) {
        size_t n = weft__http_head_extent(c);
        char *copy = malloc(n ? n : 1);
        if (!copy) return WEFT_ENOMEM;
        memcpy(copy, c->rbuf + c->msg_start, n);
        weft__http_head_rebase(c, copy, n);
        c->x->parked_head = copy;
        c->head_detached = true;
    }
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rlen = c->rpos = c->msg_start = 0;
    weft__http_update_reading(c);
    return 0;
}

/* The connection goes to the caller: the request finishes (the filters' on_end with the
 * caller's status), the socket is duplicated and the engine's connection closed without a
 * shutdown, so that no FIN goes out (the duplicate keeps the socket open) and nothing of the
 * new protocol is read by the engine. The bytes after the head are rbuf[rpos, rlen): the
 * parser paused at the end of the message (p_message_complete) and never saw them. */
int weft_http_request_takeover(weft_http_request_t *req, int status, weft_http_takeover_t *out)
{
    conn_t *c = weft__http_conn_of(req);
    if (!weft__http_holds(c)) return WEFT_ESTATE;
    if (c->hstate == H_ABORTED) return weft_http_response_end(req); /* releases it */
    if (!req->upgrade || !c->message_done || c->rstate != R_NONE) return WEFT_ESTATE;
    if (weft__http_closing(c)) return WEFT_ECLOSED;
    if (c->writing || c->olen) { /* an earlier response is still going out */
        c->drain_wanted = true;
        return WEFT_EAGAIN;
    }
    uv_os_fd_t fd;
    int err = uv_fileno((uv_handle_t *)&c->tcp, &fd);
    if (err) return err;
    size_t n = c->rbuf && c->rlen > c->rpos ? c->rlen - c->rpos : 0;
    char *data = NULL;
    if (n && !(data = malloc(n))) return WEFT_ENOMEM;
    int dfd = weft__dup_cloexec(fd);
    if (dfd < 0) {
        free(data);
        return dfd;
    }
    if (n) memcpy(data, c->rbuf + c->rpos, n);
    c->rpos = c->rlen;
    *out = (weft_http_takeover_t){.fd = dfd, .data = data, .len = n};
    req->status = status;
    req->keep_alive = false;
    weft__http_handler_to(c, H_DONE);
    weft__http_resp_to(c, R_DONE);
    c->served++;
    if (c->rtimer) uv_timer_stop(c->rtimer);
    weft__http_filters_end(c, status, false);
    weft__http_conn_close(c); /* not held any more: freed by the close callback */
    return 0;
}

void weft_http_request_pause(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    c->user_paused = true;
    weft__http_update_reading(c);
}

void weft_http_request_resume(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    c->user_paused = false;
    weft__http_update_reading(c);
}

weft_str_t weft_http_request_header(const weft_http_request_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name.len == nl && weft__http_ieq(req->headers[i].name.base, nl, name))
            return req->headers[i].value;
    return (weft_str_t){NULL, 0};
}

weft_str_t weft_http_request_param(const weft_http_request_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < req->match.nparams; i++) {
        const weft_route_param_t *p = &req->match.params[i];
        if (p->name.len == nl && memcmp(p->name.base, name, nl) == 0) return p->value;
    }
    return (weft_str_t){NULL, 0};
}

const char *weft_http_request_peer(weft_http_request_t *req)
{
    conn_t *c = weft__http_conn_of(req);
    if (c->peer[0]) return c->peer;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "";
    int port = -1;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            if (uv_ip4_name(a, ip, sizeof(ip)) == 0) port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            if (uv_ip6_name(a, ip, sizeof(ip)) == 0) port = ntohs(a->sin6_port);
        }
    }
    if (port < 0) return "-"; /* not kept: the next call may succeed */
    snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    return c->peer;
}

weft_str_t weft_http_request_peer_ip(weft_http_request_t *req)
{
    const char *peer = weft_http_request_peer(req);
    size_t pl = strlen(peer);
    const char *colon = strrchr(peer, ':'); /* "[v6]:port": the last one is the port's */
    if (colon) pl = (size_t)(colon - peer);
    if (pl >= 2 && peer[0] == '[' && peer[pl - 1] == ']') peer++, pl -= 2;
    return (weft_str_t){peer, pl};
}

void *weft_http_request_alloc(weft_http_request_t *req, size_t n)
{
    conn_t *c = weft__http_conn_of(req);
    return weft_arena_alloc(&c->x->arena, n);
}
