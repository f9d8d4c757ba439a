/*
 * fuzz_server.c - arbitrary bytes sent to the real HTTP server over loopback.
 *
 * The server (buffered, streamed-body and streamed-response routes) runs on a worker thread
 * of this process, so ASan and UBSan see every byte of its parsing and response code. Each
 * input is sent on a fresh connection, the write side is shut down, and everything the
 * server answers is read until it closes. Properties: the server never crashes, always ends
 * the exchange (no hang past 3 s once the client has finished sending), and everything it
 * writes is HTTP/1.1 responses (the bytes start with "HTTP/1.1 ").
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "weft/http.h"
#include "weft/workers.h"

static weft_http_server_t *srv;
static uint16_t port;

/* Answers with the name parameter, percent-decoded by the server. */
static void h_hello(weft_http_request_t *req, void *arg)
{
    weft_str_t name = weft_http_request_param(req, "name");
    weft_http_respond(req, 200, "text/plain", name.base, name.len);
}

/* The authority (the Host header's, or an absolute-form target's) read after the body, when
 * the head has been copied out of the read buffer, then the body. */
static void h_echo(weft_http_request_t *req, void *arg)
{
    weft_http_response_start(req, 200, NULL, (int64_t)(req->authority.len + req->body.len));
    weft_http_response_write(req, req->authority.base, req->authority.len);
    weft_http_response_write(req, req->body.base, req->body.len);
    weft_http_response_end(req);
}

static void stream_body(weft_http_request_t *req, const char *d, size_t n)
{
    if (!d) weft_http_respond(req, 204, NULL, NULL, 0);
}

/* The contract of weft/http.h: a handler finishes every request it was given, also after an
 * abort (the call then only releases it). */
static void stream_abort(weft_http_request_t *req)
{
    weft_http_response_end(req);
}

static void h_stream(weft_http_request_t *req, void *arg)
{
    req->on_body = stream_body;
    req->on_abort = stream_abort;
}

static void h_chunks(weft_http_request_t *req, void *arg)
{
    weft_http_response_start(req, 200, "text/plain", -1);
    weft_http_response_write(req, req->path.base, req->path.len);
    weft_http_response_end(req);
}

static void attach(uv_loop_t *loop, unsigned i, void *arg)
{
    weft_http_server_attach(srv, loop, i);
}

static void start(void)
{
    weft_http_server_options_t o;
    weft_http_server_options_init(&o);
    o.max_body = 4096;
    o.max_head = 2048; /* small limits so the fuzzer reaches them */
    o.max_headers = 8;
    o.max_target = 256;
    o.head_timeout_ms = 2000;
    weft_http_server_new(&o, 1, &srv);
    weft_http_route_t r = {.handler = h_hello};
    weft_http_server_route(srv, "GET", "/hello/:name", &r);
    r.handler = h_echo;
    weft_http_server_route(srv, "POST", "/echo", &r);
    r.handler = h_chunks;
    weft_http_server_route(srv, "*", "/c/*rest", &r);
    r = (weft_http_route_t){.handler = h_stream, .stream_body = true};
    weft_http_server_route(srv, "PUT", "/s", &r);
    if (weft_http_server_bind(srv, NULL, 0) != 0) abort();
    port = weft_http_server_port(srv);
    weft_workers_t *w;
    weft_workers_new(1, &w);
    weft_workers_start(w, attach, NULL); /* runs for the life of the fuzzer */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) start();
    if (size > 65536) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = -1;
    /* Thousands of loopback connections a second can run the machine out of ports for a
     * moment: that is the environment, not the server, so wait and retry. */
    for (int tries = 0; fd < 0; tries++) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
            if (tries == 50) {
                perror("fuzz_server: connect");
                abort();
            }
            close(fd);
            fd = -1;
            usleep(20000);
        }
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may close early on a bad request */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char buf[1 << 20];
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 3000);
        if (r == 0) {
            fprintf(stderr, "fuzz_server: no end of exchange within 3 s\n");
            abort();
        }
        ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        if (got == sizeof(buf)) got = 0; /* only the start is checked */
    }
    close(fd);
    if (got >= 9 && memcmp(buf, "HTTP/1.1 ", 9) != 0) abort();
    return 0;
}
