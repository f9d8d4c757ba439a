/*
 * fuzz_client.c - arbitrary bytes as the response a server sends to weft's HTTP client.
 *
 * A thread plays the server on a loopback socket: it accepts, reads the request, writes the
 * input and closes. The client runs on a loop in the fuzzer's thread. An input whose first
 * byte is below 0x20 uses that byte as flags and the rest as the response: 1 sends HEAD,
 * 2 pauses after every body piece and resumes from a timer, 4 sends the response in two
 * writes 5 ms apart, 8 pauses in on_head, 16 sends it in up to 8 pieces 1 ms apart (cut
 * where the input's bytes say), so heads arrive over several reads and the client's read
 * buffer grows and compacts under them. Any other input is the response itself.
 * Properties: on_done runs exactly once, on_head at most once and before any body, no body
 * piece while paused and none empty, the body never holds more bytes than the input, every
 * header name and value handed to on_head is readable (views into the read buffer: ASan
 * sees a stale one) and holds no CR or LF, the client closes with nothing left on its loop,
 * and ASan/UBSan/LeakSanitizer see nothing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "weft/client.h"

enum { F_HEAD = 1, F_PAUSE_BODY = 2, F_SPLIT = 4, F_PAUSE_HEAD = 8, F_TRICKLE = 16 };

static int lfd = -1;
static uint16_t port;
static const uint8_t *answer;
static size_t answer_len;
static unsigned flags;

static void send_all(int c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(c, p + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += (size_t)w;
    }
}

static void *serve_one(void *arg)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0) return NULL;
    char buf[4096];
    ssize_t n = recv(c, buf, sizeof(buf), 0);
    (void)n;
    if (flags & F_TRICKLE) {
        size_t off = 0;
        for (int i = 0; i < 8 && off < answer_len; i++) {
            size_t piece = 1 + (answer[off] * 37u + (unsigned)i) % (answer_len / 4 + 1);
            if (piece > answer_len - off) piece = answer_len - off;
            send_all(c, answer + off, piece);
            off += piece;
            usleep(1000);
        }
        send_all(c, answer + off, answer_len - off);
    } else if (flags & F_SPLIT) {
        size_t half = answer_len / 2;
        send_all(c, answer, half);
        usleep(5000);
        send_all(c, answer + half, answer_len - half);
    } else {
        send_all(c, answer, answer_len);
    }
    close(c);
    return NULL;
}

typedef struct {
    int heads, dones, bad, upgrades;
    unsigned sum;
    bool paused;
    size_t body;
    weft_http_client_call_t *call;
    uv_timer_t timer;
} seen_t;

static void on_resume(uv_timer_t *t)
{
    seen_t *s = t->data;
    if (s->dones || !s->paused) return;
    s->paused = false;
    weft_http_client_resume(s->call);
}

static void pause_now(weft_http_client_call_t *c, seen_t *s)
{
    s->paused = true;
    weft_http_client_pause(c);
    uv_timer_start(&s->timer, on_resume, 0, 0);
}

static void on_head(weft_http_client_call_t *c, int st, const weft_http_header_t *h, size_t n,
                    void *arg)
{
    seen_t *s = arg;
    s->heads++;
    if (s->body || st < 100 || st > 999) s->bad = 1;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name.base || (h[i].value.len && !h[i].value.base) || h[i].name.len == 0) {
            s->bad = 1;
            continue;
        }
        for (size_t j = 0; j < h[i].name.len; j++) {
            sum += (unsigned char)h[i].name.base[j];
            if (h[i].name.base[j] == '\r' || h[i].name.base[j] == '\n') s->bad = 1;
        }
        for (size_t j = 0; j < h[i].value.len; j++) {
            sum += (unsigned char)h[i].value.base[j];
            if (h[i].value.base[j] == '\r' || h[i].value.base[j] == '\n') s->bad = 1;
        }
    }
    s->sum += sum; /* every byte read: a stale view would be a use after free */
    if (flags & F_PAUSE_HEAD) pause_now(c, s);
}

static void on_body(weft_http_client_call_t *c, const char *d, size_t n, void *arg)
{
    seen_t *s = arg;
    if (!s->heads || s->paused || n == 0) s->bad = 1;
    s->body += n;
    if (flags & F_PAUSE_BODY) pause_now(c, s);
}

/* A 101: once, after its head, before on_done; the bytes after the head are at most what
 * was sent. The socket is the callback's to close. */
static void on_upgrade(weft_http_client_call_t *c, int fd, const char *data, size_t len, void *arg)
{
    seen_t *s = arg;
    (void)c, (void)data;
    if (s->upgrades++ || s->heads != 1 || s->dones || fd < 0 || len > answer_len) s->bad = 1;
    if (fd >= 0) close(fd);
}

static void on_done(weft_http_client_call_t *c, int err, void *arg)
{
    seen_t *s = arg;
    if (err == 0 && s->paused) s->bad = 1; /* a paused call does not complete */
    s->dones++;
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
    flags = 0;
    if (size && data[0] < 0x20) {
        flags = data[0];
        data++;
        size--;
    }
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
    uv_timer_init(&loop, &s.timer);
    s.timer.data = &s;
    weft_http_client_req_t r = {.method = flags & F_HEAD ? "HEAD" : "GET",
                                .host = "127.0.0.1",
                                .port = port,
                                .target = "/"};
    weft_http_client_cbs_t cbs = {on_head, on_body, on_done, NULL, on_upgrade};
    if (weft_http_client_request(c, &r, &cbs, &s, &s.call)) abort();
    for (int i = 0; i < 100000 && !s.dones; i++) uv_run(&loop, UV_RUN_ONCE);
    if (s.dones != 1 || s.heads > 1 || s.bad || s.body > size) abort();
    closed = 0;
    weft_http_client_close(c, on_closed, NULL);
    uv_close((uv_handle_t *)&s.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!closed || s.dones != 1 || uv_loop_close(&loop) != 0) abort();
    pthread_join(th, NULL);
    return 0;
}
