/*
 * fuzz_client.c - arbitrary bytes as the response a server sends to weft's HTTP client.
 *
 * A thread plays the server on a loopback socket: it accepts, reads the request, writes the
 * input and closes. The client runs on a loop in the fuzzer's thread. Properties: on_done
 * runs exactly once, on_head at most once and before any body, the body never holds more
 * bytes than the input, the client closes with nothing left on its loop, and ASan/UBSan/
 * LeakSanitizer see nothing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/client.h"

static int lfd = -1;
static uint16_t port;
static const uint8_t *answer;
static size_t answer_len;

static void *serve_one(void *arg)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0) return NULL;
    char buf[4096];
    ssize_t n = recv(c, buf, sizeof(buf), 0);
    (void)n;
    size_t off = 0;
    while (off < answer_len) {
        ssize_t w = send(c, answer + off, answer_len - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(c);
    return NULL;
}

typedef struct {
    int heads, dones, body_before_head;
    size_t body;
} seen_t;

static void on_head(weft_http_client_call_t *c, int st, const weft_http_header_t *h, size_t n,
                    void *arg)
{
    seen_t *s = arg;
    s->heads++;
    for (size_t i = 0; i < n; i++)
        if (!h[i].name.base || (h[i].value.len && !h[i].value.base)) abort();
}

static void on_body(weft_http_client_call_t *c, const char *d, size_t n, void *arg)
{
    seen_t *s = arg;
    if (!s->heads) s->body_before_head = 1;
    s->body += n;
}

static void on_done(weft_http_client_call_t *c, int err, void *arg)
{
    ((seen_t *)arg)->dones++;
}

static int closed;
static void on_closed(void *arg)
{
    closed = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (lfd < 0) {
        lfd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        socklen_t al = sizeof(a);
        if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 16) ||
            getsockname(lfd, (struct sockaddr *)&a, &al))
            abort();
        port = ntohs(a.sin_port);
    }
    if (size > 65536) return 0;
    answer = data;
    answer_len = size;
    pthread_t th;
    pthread_create(&th, NULL, serve_one, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    weft_http_client_options_t o;
    weft_http_client_options_init(&o);
    o.request_timeout_ms = 2000;
    o.max_response_head = 4096; /* small, so the fuzzer reaches the limit */
    o.max_headers = 8;
    weft_http_client_t *c;
    if (weft_http_client_new(&loop, &o, &c)) abort();
    seen_t s = {0};
    weft_http_client_req_t r = {.method = size && (data[0] & 1) ? "HEAD" : "GET",
                                .host = "127.0.0.1",
                                .port = port,
                                .target = "/"};
    weft_http_client_cbs_t cbs = {on_head, on_body, on_done};
    if (weft_http_client_request(c, &r, &cbs, &s, NULL)) abort();
    for (int i = 0; i < 100000 && !s.dones; i++) uv_run(&loop, UV_RUN_ONCE);
    if (s.dones != 1 || s.heads > 1 || s.body_before_head || s.body > size) abort();
    closed = 0;
    weft_http_client_close(c, on_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!closed || uv_loop_close(&loop) != 0) abort();
    pthread_join(th, NULL);
    return 0;
}
