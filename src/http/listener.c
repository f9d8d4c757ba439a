/*
 * listener.c - the HTTP server object and its listeners: options, routes and filters,
 * binding, one listener per worker loop (accepting, the sweep), graceful shutdown.
 *
 * Design. weft_http_server_new takes the options; routes and filters are added before
 * weft_http_server_bind, which opens one SO_REUSEPORT socket per loop after a probe
 * without the option, so two servers never silently share a port (core/listen.c, as for
 * the host's other listeners), and fits the connection cap to the open-file limit. Each
 * worker loop then attaches its listener: a libuv handle on a duplicate of its socket, the
 * reader its connections are read through (conn.c, reader.h), and a timer for the sweep.
 * Shutdown stops accepting, closes idle connections, tells held requests
 * (WEFT_HTTP_EVENT_SHUTDOWN), lets the others finish until http.shutdown_timeout, and calls
 * back once every handle of the listener is closed.
 *
 * Threads. A server is configured and bound on one thread, then each worker loop attaches
 * one listener and from then on every connection, buffer and timer of that listener is
 * touched only by that loop's thread. The only cross-thread reads are the connection count
 * and the rejected count (atomics) for metrics, and the draining flag.
 *
 * Timeouts. No timer per connection: each connection carries a deadline and a SWEEP_MS
 * sweep per listener (on_timer) closes or answers 408 to the ones past it. Storing a
 * deadline is all a request pays. The same sweep refreshes the cached Date header, retries
 * an accept that found no memory, resumes a paused listener and kicks connections whose
 * bytes found no memory.
 *
 * Accept errors. libuv retries a failed accept at once and calls back once per failure, so
 * an error that persists (ENOMEM, ENOBUFS, EMFILE without a spare descriptor) would keep the
 * loop in its accept loop for good. After ACCEPT_RETRIES failures in a row the listener
 * pauses: its handle is closed (which ends libuv's loop) while the socket made at bind,
 * kept as the spare (libuv's handle has a duplicate), keeps it listening, so waiting
 * connections stay queued; the next sweep opens a handle on a new duplicate. As NGINX does on
 * EMFILE, clients wait instead of being reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/listen.h"
#include "http/server_int.h"
#include "weft/log.h"
#include "weft/router.h"

/* An accept error other than EMFILE (ENOBUFS, ENOMEM, EPERM from a firewall...): libuv calls
 * back once per failed accept and tries the next at once, so the warning is logged at most
 * once a second, with how many were left out. */
static void accept_failed(listener_t *l, int status)
{
    uint64_t now = uv_now(l->loop);
    l->accept_errors++;
    if (l->accept_warned_at && now - l->accept_warned_at < 1000) return;
    weft_warn("http", "accept failed", "err=%s worker=%u errors_not_logged=%" PRIu64,
              uv_err_name(status), l->index, l->accept_errors - 1);
    l->accept_warned_at = now ? now : 1;
    l->accept_errors = 0;
}

static void listener_pause(listener_t *l, int status);

static void on_connection(uv_stream_t *server, int status)
{
    listener_t *l = server->data;
    if (status < 0) {
        accept_failed(l, status);
        if (++l->accept_failures >= ACCEPT_RETRIES && !l->accept_paused && !l->shutting_down)
            listener_pause(l, status);
        return;
    }
    l->accept_failures = 0;
    if (l->accept_pauses) {
        weft_info("http", "accepting again", "worker=%u pauses=%u", l->index, l->accept_pauses);
        l->accept_pauses = 0;
    }
    conn_t *c = calloc(1, sizeof(*c)); /* no buffers yet: they come with the first bytes */
    if (!c) {
        /* libuv holds the connection and stops polling the listener until it is accepted:
         * returning without a word would leave this worker deaf for good. on_timer tries
         * again (within SWEEP_MS); the connection waits in the meantime. */
        if (!l->accept_stalled)
            weft_warn("http", "out of memory for a new connection, retrying", "worker=%u",
                      l->index);
        l->accept_stalled = true;
        return;
    }
    l->accept_stalled = false;
    uv_tcp_init(l->loop, &c->tcp); /* no socket is created here: it cannot fail */
    c->l = l;
    c->tcp.data = c;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    atomic_fetch_add_explicit(&l->nconns, 1, memory_order_relaxed);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        weft__http_conn_close(c);
        return;
    }
    /* calloc made it C_IDLE, H_NONE, R_NONE, L_OPEN */
    c->deadline = weft__http_loop_now(c) + l->srv->o.head_timeout_ms;
    bool over = atomic_load_explicit(&l->nconns, memory_order_relaxed) > l->srv->conn_cap;
    if (over || l->shutting_down) {
        if (over && !l->shutting_down)
            atomic_store_explicit(&l->rejected,
                                  atomic_load_explicit(&l->rejected, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        const char *body =
            l->srv->cap_by_nofile
                ? "{\"error\":\"too many connections (open-file limit: ulimit -n)\"}\n"
                : "{\"error\":\"too many connections (http.max_connections)\"}\n";
        /* Retry-After (RFC 9110 10.2.3): a client, or a proxy's retry policy, may come back
         * in a second, when connections have likely closed, rather than at once */
        char busy[256];
        int n = snprintf(busy, sizeof(busy),
                         "HTTP/1.1 503 Service Unavailable\r\n%.*sRetry-After: 1\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         (int)l->date_len, l->date, strlen(body), body);
        uv_buf_t b = uv_buf_init(busy, (unsigned)n);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        weft__http_conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || weft__http_reading_add(c, fd) != 0)
        weft__http_conn_close(c);
}

/* The Date header of every response, "Date: ...\r\n", refreshed by each sweep. */
static void format_date(listener_t *l)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    l->date_len = strftime(l->date, sizeof(l->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static void listener_resume(listener_t *l);

/* The sweep (see Timeouts at the top). */
static void on_timer(uv_timer_t *t)
{
    listener_t *l = t->data;
    format_date(l);
    if (l->accept_paused && l->tcp_closed && !l->shutting_down) listener_resume(l);
    if (l->accept_stalled && !l->shutting_down) on_connection((uv_stream_t *)&l->tcp, 0);
    uint64_t now = uv_now(l->loop);
    bool force = l->shutting_down && now >= l->shutdown_deadline;
    bool stalled = l->mem_stalled; /* connections whose bytes found no memory: try again */
    l->mem_stalled = false;
    weft__http_xfree_trim(l);
    conn_t *c = l->conns;
    while (c) {
        conn_t *next = c->next;
        if (weft__http_closing(c)) {
            c = next;
            continue;
        }
        if (stalled && (!c->x || !c->rbuf)) weft__reader_kick(&c->rf); /* when bytes wait */
        if (c->kept) { /* quiet since the last sweep or the one before (conn_rest) */
            if (c->kept_swept) {
                weft__http_conn_unkeep(c);
                if (weft__http_conn_quiet(c)) weft__http_conn_release(c);
            } else {
                c->kept_swept = true;
            }
        }
        if (force || (c->wdeadline && now >= c->wdeadline)) {
            weft__http_conn_close(c);
        } else if (c->deadline && now >= c->deadline) {
            switch (c->state) {
            case C_HEAD:
                weft__http_send_error(c, 408,
                                      "request head not received in time (http.head_timeout)");
                break;
            case C_BODY:
                if (weft__http_holds(c) && c->rstate != R_NONE)
                    weft__http_conn_close(c);
                else
                    weft__http_send_error(c, 408,
                                          "request body not received in time (http.body_timeout)");
                break;
            case C_HANDLER:
                c->deadline = 0;
                break;
            default:
                weft__http_conn_close(c);
            }
        }
        c = next;
    }
}

static void on_listener_handle_closed(uv_handle_t *h)
{
    listener_t *l = h->data;
    if (h == (uv_handle_t *)&l->tcp) l->tcp_closed = true;
    l->open_handles--;
    weft__http_listener_maybe_done(l);
}

static void on_reader_closed(weft__reader_t *r)
{
    listener_t *l = r->data;
    l->open_handles--;
    weft__http_listener_maybe_done(l);
}

/* A listener shutting down without connections closes its handles, then calls back. */
void weft__http_listener_maybe_done(listener_t *l)
{
    if (!l->shutting_down || l->conns) return;
    if (!uv_is_closing((uv_handle_t *)&l->timer)) {
        uv_close((uv_handle_t *)&l->timer, on_listener_handle_closed);
        weft__reader_close(&l->reader, on_reader_closed); /* every connection is gone */
        return;
    }
    if (l->open_handles == 0) weft__http_xfree_drain(l);
    if (l->open_handles == 0 && l->on_done) {
        void (*cb)(void *) = l->on_done;
        l->on_done = NULL;
        cb(l->done_arg);
    }
}

void weft_http_server_options_init(weft_http_server_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 0;
    o->backlog = 511;
    o->max_head = 64 * 1024;
    o->max_target = 8 * 1024;
    o->max_headers = 100;
    o->max_body = 1024 * 1024;
    o->max_connections = 10000;
    o->head_timeout_ms = 10000;
    o->idle_timeout_ms = 60000;
    o->body_timeout_ms = 30000;
    o->write_timeout_ms = 30000;
    o->shutdown_timeout_ms = 10000;
    o->busy_poll_us = 30;
    o->busy_poll_share = 25;
}

int weft_http_server_new(const weft_http_server_options_t *o, unsigned n_loops,
                         weft_http_server_t **out)
{
    if (n_loops == 0 || n_loops > 1024) return WEFT_EINVAL;
    weft_http_server_t *s = calloc(1, sizeof(*s));
    if (!s) return WEFT_ENOMEM;
    if (o)
        s->o = *o;
    else
        weft_http_server_options_init(&s->o);
    const char *host = s->o.host ? s->o.host : "127.0.0.1";
    if (strlen(host) >= sizeof(s->host) || s->o.max_headers == 0 || s->o.max_head < 256 ||
        s->o.max_target == 0 || s->o.max_connections == 0) {
        free(s);
        return WEFT_EINVAL;
    }
    strcpy(s->host, host);
    s->o.host = s->host;
    s->n_loops = n_loops;
    s->router = weft_router_new();
    s->fds = malloc(sizeof(int) * n_loops);
    s->listeners = calloc(n_loops, sizeof(listener_t));
    if (!s->router || !s->fds || !s->listeners) {
        weft_http_server_free(s);
        return WEFT_ENOMEM;
    }
    for (unsigned i = 0; i < n_loops; i++) {
        s->fds[i] = -1;
        s->listeners[i].spare_fd = -1;
        s->listeners[i].reader.ep = -1;
    }
    *out = s;
    return 0;
}

int weft_http_server_route(weft_http_server_t *s, const char *method, const char *pattern,
                           const weft_http_route_t *route)
{
    if (s->bound) return WEFT_ESTATE;
    if (!route || !route->handler) return WEFT_EINVAL;
    weft_http_route_t *copy = malloc(sizeof(*copy));
    weft_http_route_t **list = realloc(s->routes, sizeof(*list) * (s->nroutes + 1));
    if (!copy || !list) {
        free(copy);
        if (list) s->routes = list;
        return WEFT_ENOMEM;
    }
    s->routes = list;
    *copy = *route;
    int err = weft_router_add(s->router, method, pattern, copy);
    if (err != 0) {
        free(copy);
        return err;
    }
    s->routes[s->nroutes++] = copy;
    return 0;
}

int weft_http_server_filter(weft_http_server_t *s, const weft_http_filter_t *f)
{
    if (!f || (!f->on_request && !f->on_head && !f->on_end)) return WEFT_EINVAL;
    if (s->bound) return WEFT_ESTATE;
    if (s->nfilters >= WEFT_HTTP_FILTERS_MAX) return WEFT_ELIMIT;
    s->nfilters++;
    if (f->on_request) {
        s->f_request[s->nf_request].fn = f->on_request;
        s->f_request[s->nf_request++].arg = f->arg;
    }
    /* on_head and on_end run in reverse order: each new one goes first */
    if (f->on_head) {
        memmove(&s->f_head[1], &s->f_head[0], s->nf_head * sizeof(s->f_head[0]));
        s->f_head[0].fn = f->on_head;
        s->f_head[0].arg = f->arg;
        s->nf_head++;
    }
    if (f->on_end) {
        memmove(&s->f_end[1], &s->f_end[0], s->nf_end * sizeof(s->f_end[0]));
        s->f_end[0].fn = f->on_end;
        s->f_end[0].arg = f->arg;
        s->nf_end++;
    }
    return 0;
}

#define FD_RESERVE 64 /* descriptors left for everything but the server's connections */

static uv_once_t nofile_once = UV_ONCE_INIT;

/* Once per process: the soft open-file limit up to the hard one (see weft_http_server_bind). */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max) return;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    weft_info("http", "raised the open-file limit", "from=%llu to=%llu", (unsigned long long)was,
              (unsigned long long)rl.rlim_max);
}

/* Descriptors open now, estimated from the listening sockets just opened: the kernel hands
 * out the lowest free number, so the highest of them + 1 is about how many are in use.
 * Counting /proc/self/fd would be exact but opens a descriptor, and on a thread other than
 * a running loop's that can take a number libuv has just closed with a raw close syscall,
 * which ThreadSanitizer cannot see and then reports as a race on the descriptor. */
static unsigned long fds_open(const weft_http_server_t *s)
{
    int top = 2;
    for (unsigned i = 0; i < s->n_loops; i++)
        if (s->fds[i] > top) top = s->fds[i];
    return (unsigned long)top + 1;
}

/* s->conn_cap: max_connections, unless the open-file limit holds fewer on every loop. */
static void fit_conn_cap(weft_http_server_t *s)
{
    s->conn_cap = s->o.max_connections;
    s->cap_by_nofile = false;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    unsigned long open = fds_open(s), limit = (unsigned long)rl.rlim_cur;
    unsigned long spare = limit > open + FD_RESERVE ? limit - open - FD_RESERVE : 0;
    unsigned long per_loop = spare / s->n_loops;
    if (per_loop >= s->o.max_connections) return;
    s->conn_cap = per_loop > 0 ? (unsigned)per_loop : 1;
    s->cap_by_nofile = true;
    /* a warning when it is few enough to bite; 10000 on 2 loops under a limit of 20000 is
     * not news at every start */
    weft_log(s->conn_cap < 1024 ? WEFT_LOG_WARN : WEFT_LOG_INFO, "http",
             "the open-file limit caps connections per worker; raise ulimit -n",
             "nofile=%lu open=%lu reserved=%d workers=%u max_connections=%u per_worker=%u", limit,
             open, FD_RESERVE, s->n_loops, s->o.max_connections, s->conn_cap);
}

unsigned weft_http_server_max_connections(const weft_http_server_t *s)
{
    return s->conn_cap;
}

int weft_http_server_bind(weft_http_server_t *s, char *err_msg, size_t err_len)
{
    if (s->bound) return WEFT_ESTATE;
    uint16_t port;
    int err = weft__listen_open(s->host, s->o.port, SOCK_STREAM, (int)s->o.backlog, s->n_loops,
                                s->fds, &port, err_msg, err_len);
    if (err) {
        for (unsigned i = 0; i < s->n_loops; i++) s->fds[i] = -1; /* listen.c closed them */
        return err;
    }
    s->port = port;
    s->bound = true;
    uv_once(&nofile_once, raise_nofile);
    fit_conn_cap(s);
    return 0;
}

uint16_t weft_http_server_port(const weft_http_server_t *s)
{
    return s->port;
}

/* Opens l->tcp on the listening socket fd and listens. fd is the handle's from here on: on
 * failure it is closed with the handle (tcp_closed tells when that is done). */
static int listener_open(listener_t *l, int fd)
{
    int err = uv_tcp_init(l->loop, &l->tcp);
    if (err) {
        close(fd);
        return err;
    }
    l->tcp.data = l;
    l->tcp_closed = false;
    l->open_handles++;
    if ((err = uv_tcp_open(&l->tcp, fd)) != 0)
        close(fd); /* refused: not the handle's yet */
    else
        err = uv_listen((uv_stream_t *)&l->tcp, (int)l->srv->o.backlog, on_connection);
    if (err) uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
    return err;
}

static void listener_pause(listener_t *l, int status)
{
    if (!l->accept_pauses++)
        weft_warn("http", "accept paused", "err=%s worker=%u failures=%u retry_every_ms=%d",
                  uv_err_name(status), l->index, l->accept_failures, SWEEP_MS);
    l->accept_paused = true;
    l->accept_failures = 0;
    uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed); /* the socket stays open */
}

/* A sweep after a pause: a new handle on a new duplicate of the socket. If that fails (no
 * descriptor left, say), the listener stays paused and the next sweep tries again. */
static void listener_resume(listener_t *l)
{
    int fd = fcntl(l->spare_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return;
    if (listener_open(l, fd) != 0) return; /* tcp_closed is set again once it has closed */
    l->accept_paused = false;
    l->accept_failures = 0;
}

int weft_http_server_attach(weft_http_server_t *s, uv_loop_t *loop, unsigned index)
{
    if (!s->bound || index >= s->n_loops || s->listeners[index].attached) return WEFT_ESTATE;
    listener_t *l = &s->listeners[index];
    l->srv = s;
    l->loop = loop;
    l->index = index;
    int err = weft__http_reading_init(l);
    if (err) return err;
    l->open_handles++;
    /* libuv gets a duplicate and the socket made at bind stays the spare: libuv closes its
     * descriptors with a raw syscall that ThreadSanitizer does not see, so a number it closed
     * and this thread then reused and closed itself would look like a race on the number */
    int fd = fcntl(s->fds[index], F_DUPFD_CLOEXEC, 0);
    err = fd < 0 ? uv_translate_sys_error(errno) : listener_open(l, fd);
    if (err) { /* the loop's next turns close it */
        weft__reader_close(&l->reader, on_reader_closed);
        return err;
    }
    l->spare_fd = s->fds[index];
    s->fds[index] = -1;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    l->open_handles++;
    uv_timer_start(&l->timer, on_timer, SWEEP_MS, SWEEP_MS);
    format_date(l);
    l->attached = true;
    return 0;
}

void weft_http_server_shutdown(weft_http_server_t *s, unsigned index, void (*on_done)(void *),
                               void *arg)
{
    listener_t *l = &s->listeners[index];
    if (!l->attached || l->shutting_down) {
        if (!l->attached && on_done) on_done(arg);
        return;
    }
    l->shutting_down = true;
    l->on_done = on_done;
    l->done_arg = arg;
    l->shutdown_deadline = uv_now(l->loop) + s->o.shutdown_timeout_ms;
    if (!l->accept_paused) uv_close((uv_handle_t *)&l->tcp, on_listener_handle_closed);
    close(l->spare_fd); /* the last descriptor of the socket: its queued connections are reset */
    l->spare_fd = -1;
    for (conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        if (weft__http_closing(c)) continue;
        if (c->state == C_IDLE && !weft__http_holds(c) && !c->writing && c->olen == 0 &&
            c->rpos == c->rlen)
            weft__http_conn_close(c);
        else
            c->x->req.keep_alive = false; /* the response in progress will say close */
    }
    /* Handlers that hold requests (long polls) may answer now rather than at the deadline.
     * One may finish its request, and the connection may close: only c itself can go. */
    for (conn_t *c = l->conns, *next; c; c = next) {
        next = c->next;
        weft__http_tell(c, WEFT_HTTP_EVENT_SHUTDOWN);
    }
    weft__http_listener_maybe_done(l);
}

void weft_http_server_drain(weft_http_server_t *s)
{
    atomic_store_explicit(&s->draining, true, memory_order_relaxed);
}

uint64_t weft_http_server_rejected(const weft_http_server_t *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < s->n_loops; i++)
        n += atomic_load_explicit(&s->listeners[i].rejected, memory_order_relaxed);
    return n;
}

unsigned weft_http_server_loops(const weft_http_server_t *s)
{
    return s->n_loops;
}

unsigned weft_http_server_connections(const weft_http_server_t *s, unsigned index)
{
    if (index >= s->n_loops) return 0;
    return atomic_load_explicit(&s->listeners[index].nconns, memory_order_relaxed);
}

void weft_http_server_free(weft_http_server_t *s)
{
    if (!s) return;
    if (s->fds)
        for (unsigned i = 0; i < s->n_loops; i++)
            if (s->fds[i] >= 0) close(s->fds[i]);
    if (s->listeners)
        for (unsigned i = 0; i < s->n_loops; i++)
            if (s->listeners[i].spare_fd >= 0) close(s->listeners[i].spare_fd);
    if (s->listeners)
        for (unsigned i = 0; i < s->n_loops; i++) {
            if (s->listeners[i].reader.ep >= 0) close(s->listeners[i].reader.ep);
            weft__http_xfree_drain(&s->listeners[i]);
        }
    for (size_t i = 0; i < s->nroutes; i++) free(s->routes[i]);
    free(s->routes);
    if (s->router) weft_router_free(s->router);
    free(s->fds);
    free(s->listeners);
    free(s);
}
