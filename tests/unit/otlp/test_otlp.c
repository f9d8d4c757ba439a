/*
 * test_otlp.c - the OTLP/HTTP span exporter (src/otlp/) against a fake receiver.
 *
 * There is no real OTLP receiver packaged in Debian here (weft's own collector comes later),
 * so the receiver is a small HTTP/1.1 server on a loopback port, in a thread of this test:
 * it records each request's line, Content-Type and body, and answers with a status the test
 * chooses. The bodies are parsed with jansson and checked against the OTLP/JSON encoding
 * (opentelemetry-proto's JSON mapping: lowerCamelCase names, hex ids, decimal-string
 * int64 and times, integer enums). Also: option validation, queue-full drops, failed batches
 * (non-2xx, receiver down, receiver that never answers) counted, and shutdown within its
 * timeout.
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "weft/metrics.h"
#include "weft/otlp.h"
#include "weft/trace.h"
#include "weft/weft.h"

/* ---- the fake receiver ---- */

#define MAX_BODIES 64

typedef struct receiver_s {
    int lfd;
    uint16_t port;
    pthread_t th;
    bool started;
    atomic_int stop;
    atomic_int status;    /* what it answers */
    atomic_int fail_left; /* while > 0, answers fail_status instead (and counts down) */
    atomic_int fail_status;
    char retry_after[48]; /* a Retry-After header on the fail_status answers, if set */
    atomic_int requests;  /* requests answered */
    pthread_mutex_t mu;
    char *bodies[MAX_BODIES];
    size_t body_lens[MAX_BODIES];
    int nbodies;
    char request_line[128];
    char content_type[64];
    char head[2048]; /* the last request's head */
} receiver_t;

static receiver_t rcv;

/* *port 0: a free port, written back; else that port. */
static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Waits for fd to be readable, 50 ms at a time, until stop: 1 readable, 0 stopping. */
static int wait_readable(receiver_t *r, int fd)
{
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) return 1;
    }
    return 0;
}

static void serve_conn(receiver_t *r, int fd)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        char *end;
        while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
            if (n == cap || !wait_readable(r, fd)) goto out;
            ssize_t k = recv(fd, buf + n, cap - n, 0);
            if (k <= 0) goto out;
            n += (size_t)k;
        }
        size_t head = (size_t)(end - buf) + 4, clen = 0;
        buf[head - 1] = 0;
        char *line = buf, *ctype = NULL;
        for (char *p = strstr(buf, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
            if (strncasecmp(p + 2, "content-length:", 15) == 0) clen = strtoul(p + 17, NULL, 10);
            if (strncasecmp(p + 2, "content-type:", 13) == 0) ctype = p + 15;
        }
        assert_true(head + clen <= cap);
        while (n < head + clen) {
            if (!wait_readable(r, fd)) goto out;
            ssize_t k = recv(fd, buf + n, cap - n, 0);
            if (k <= 0) goto out;
            n += (size_t)k;
        }
        char *body = malloc(clen + 1);
        memcpy(body, buf + head, clen);
        body[clen] = 0;
        pthread_mutex_lock(&r->mu);
        snprintf(r->request_line, sizeof(r->request_line), "%.*s",
                 (int)(strstr(line, "\r\n") - line), line);
        snprintf(r->head, sizeof(r->head), "%s", buf); /* NUL-terminated inside the head */
        if (ctype) {
            while (*ctype == ' ') ctype++;
            snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)strcspn(ctype, "\r"),
                     ctype);
        }
        if (r->nbodies < MAX_BODIES) {
            r->body_lens[r->nbodies] = clen;
            r->bodies[r->nbodies++] = body;
        } else
            free(body);
        pthread_mutex_unlock(&r->mu);
        char resp[192];
        int status = atomic_load(&r->status), rl;
        if (atomic_fetch_sub(&r->fail_left, 1) > 0)
            rl = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\n%s%s%sContent-Length: 2\r\n\r\n{}",
                          atomic_load(&r->fail_status), r->retry_after[0] ? "Retry-After: " : "",
                          r->retry_after, r->retry_after[0] ? "\r\n" : "");
        else
            rl = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n{}",
                          status);
        atomic_fetch_add(&r->requests, 1);
        send(fd, resp, (size_t)rl, MSG_NOSIGNAL);
        memmove(buf, buf + head + clen, n - head - clen);
        n -= head + clen;
    }
out:
    free(buf);
    close(fd);
}

static void *receiver_run(void *arg)
{
    receiver_t *r = arg;
    while (wait_readable(r, r->lfd)) {
        int fd = accept(r->lfd, NULL, NULL);
        if (fd >= 0) serve_conn(r, fd);
    }
    return NULL;
}

/* accept: false for a receiver that listens but never accepts (requests never answered).
 * port 0: any free port; else that one. Its first fail_left requests are answered with
 * fail_status (and a Retry-After header when retry_after is not NULL), the rest with 200.
 * All of it is set before the receiver's thread starts. */
static void receiver_start_with(bool accept_conns, uint16_t port, int fail_status, int fail_left,
                                const char *retry_after)
{
    memset(&rcv, 0, sizeof(rcv));
    pthread_mutex_init(&rcv.mu, NULL);
    atomic_store(&rcv.status, 200);
    atomic_store(&rcv.fail_status, fail_status);
    atomic_store(&rcv.fail_left, fail_left);
    if (retry_after) snprintf(rcv.retry_after, sizeof(rcv.retry_after), "%s", retry_after);
    rcv.port = port;
    rcv.lfd = listen_loopback(&rcv.port);
    if (accept_conns) {
        assert_int_equal(pthread_create(&rcv.th, NULL, receiver_run, &rcv), 0);
        rcv.started = true;
    }
}

static void receiver_start(bool accept_conns)
{
    receiver_start_with(accept_conns, 0, 0, 0, NULL);
}

static void receiver_start_failing(int status, int left, const char *retry_after)
{
    receiver_start_with(true, 0, status, left, retry_after);
}

static void receiver_stop(void)
{
    atomic_store(&rcv.stop, 1);
    if (rcv.started) pthread_join(rcv.th, NULL);
    close(rcv.lfd);
    for (int i = 0; i < rcv.nbodies; i++) free(rcv.bodies[i]);
    pthread_mutex_destroy(&rcv.mu);
}

/* A loopback port nothing listens on. */
static uint16_t closed_port(void)
{
    uint16_t port = 0;
    close(listen_loopback(&port));
    return port;
}

static uint64_t ms_now(void)
{
    return weft_now_ns() / 1000000u;
}

/* ---- helpers ---- */

static weft_span_exporter_t *exporter_from(const weft_otlp_options_t *o)
{
    char err[256] = "";
    weft_span_exporter_t *e = weft_otlp_exporter_new(o, err, sizeof(err));
    if (!e) fail_msg("weft_otlp_exporter_new: %s", err);
    return e;
}

static void test_options_for(weft_otlp_options_t *o, uint16_t port, size_t max_queue,
                             size_t max_batch, uint64_t flush_ms, uint64_t shutdown_ms)
{
    weft_otlp_options_init(o);
    o->port = port;
    o->service_name = "otlp-unit";
    o->max_queue = max_queue;
    o->max_batch = max_batch;
    o->flush_interval_ms = flush_ms;
    o->shutdown_timeout_ms = shutdown_ms;
}

static weft_span_exporter_t *new_exporter(uint16_t port, size_t max_queue, size_t max_batch,
                                          uint64_t flush_ms, uint64_t shutdown_ms)
{
    weft_otlp_options_t o;
    test_options_for(&o, port, max_queue, max_batch, flush_ms, shutdown_ms);
    return exporter_from(&o);
}

/* Retries after 20..50 ms: the tests do not wait for the default backoff. */
static weft_span_exporter_t *new_retrying_exporter(uint16_t port, unsigned max_attempts,
                                                   uint64_t shutdown_ms)
{
    weft_otlp_options_t o;
    test_options_for(&o, port, 2048, 512, 20, shutdown_ms);
    o.max_attempts = max_attempts;
    o.retry_initial_backoff_ms = 20;
    o.retry_max_backoff_ms = 50;
    return exporter_from(&o);
}

static weft_tracer_t *new_tracer(weft_span_exporter_t *e)
{
    weft_tracer_options_t to;
    weft_tracer_options_init(&to);
    to.service_name = "tracer-name"; /* the exporter's service_name is what is sent */
    to.exporter = e;
    weft_tracer_t *t;
    assert_int_equal(weft_tracer_new(&to, &t), 0);
    return t;
}

static weft_otlp_stats_t stats(weft_span_exporter_t *e)
{
    weft_otlp_stats_t s;
    assert_int_equal(weft_otlp_exporter_stats(e, &s), 0);
    return s;
}

static void end_spans(weft_tracer_t *t, int n)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "span-%d", i);
        weft_span_end(weft_span_start(t, name, WEFT_SPAN_INTERNAL, NULL));
    }
}

/* ---- OTLP protobuf, read back into the OTLP/JSON shape ---- */

/* A protobuf message as the JSON encoder writes it: for each field number its JSON name and
 * how to show it. Kinds: 's' string, 'h' bytes as lowercase hex, 'u' varint as an integer,
 * 'i' int64 varint as a decimal string, 'b' bool, 'd' double (fixed64), 'x' fixed64 as a
 * decimal string, 'f' fixed32 as an integer, 'm' message (sub), 'r' repeated message. */
typedef struct pb_field_s {
    unsigned num;
    const char *name;
    char kind;
    const struct pb_msg_s *sub;
} pb_field_t;
typedef struct pb_msg_s {
    const pb_field_t *f;
    size_t n;
} pb_msg_t;
#define PB_MSG(fields)                                                                             \
    {                                                                                              \
        fields, sizeof(fields) / sizeof(fields[0])                                                 \
    }
static const pb_field_t any_f[] = {{1, "stringValue", 's', NULL},
                                   {2, "boolValue", 'b', NULL},
                                   {3, "intValue", 'i', NULL},
                                   {4, "doubleValue", 'd', NULL}};
static const pb_msg_t any_m = PB_MSG(any_f);
static const pb_field_t kv_f[] = {{1, "key", 's', NULL}, {2, "value", 'm', &any_m}};
static const pb_msg_t kv_m = PB_MSG(kv_f);
static const pb_field_t status_f[] = {{2, "message", 's', NULL}, {3, "code", 'u', NULL}};
static const pb_msg_t status_m = PB_MSG(status_f);
static const pb_field_t event_f[] = {{1, "timeUnixNano", 'x', NULL},
                                     {2, "name", 's', NULL},
                                     {3, "attributes", 'r', &kv_m},
                                     {4, "droppedAttributesCount", 'u', NULL}};
static const pb_msg_t event_m = PB_MSG(event_f);
static const pb_field_t span_f[] = {{1, "traceId", 'h', NULL},
                                    {2, "spanId", 'h', NULL},
                                    {3, "traceState", 's', NULL},
                                    {4, "parentSpanId", 'h', NULL},
                                    {5, "name", 's', NULL},
                                    {6, "kind", 'u', NULL},
                                    {7, "startTimeUnixNano", 'x', NULL},
                                    {8, "endTimeUnixNano", 'x', NULL},
                                    {9, "attributes", 'r', &kv_m},
                                    {10, "droppedAttributesCount", 'u', NULL},
                                    {11, "events", 'r', &event_m},
                                    {12, "droppedEventsCount", 'u', NULL},
                                    {15, "status", 'm', &status_m},
                                    {16, "flags", 'f', NULL}};
static const pb_msg_t span_m = PB_MSG(span_f);
static const pb_field_t scope_f[] = {{1, "name", 's', NULL}, {2, "version", 's', NULL}};
static const pb_msg_t scope_m = PB_MSG(scope_f);
static const pb_field_t scope_spans_f[] = {{1, "scope", 'm', &scope_m}, {2, "spans", 'r', &span_m}};
static const pb_msg_t scope_spans_m = PB_MSG(scope_spans_f);
static const pb_field_t resource_f[] = {{1, "attributes", 'r', &kv_m}};
static const pb_msg_t resource_m = PB_MSG(resource_f);
static const pb_field_t resource_spans_f[] = {{1, "resource", 'm', &resource_m},
                                              {2, "scopeSpans", 'r', &scope_spans_m}};
static const pb_msg_t resource_spans_m = PB_MSG(resource_spans_f);
static const pb_field_t request_f[] = {{1, "resourceSpans", 'r', &resource_spans_m}};
static const pb_msg_t request_m = PB_MSG(request_f);

static uint64_t pb_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end) fail_msg("protobuf: varint runs past its message");
        uint8_t c = *(*p)++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    fail_msg("protobuf: varint longer than 10 bytes");
    return 0;
}

static uint64_t pb_le(const uint8_t **p, const uint8_t *end, unsigned n)
{
    if ((size_t)(end - *p) < n) fail_msg("protobuf: fixed field runs past its message");
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)(*p)[i] << (8 * i);
    *p += n;
    return v;
}

/* The message at p[0..n) as a JSON object; fails the test on anything malformed, unknown,
 * or of the wrong wire type. */
static json_t *pb_to_json(const uint8_t *p, size_t n, const pb_msg_t *m)
{
    const uint8_t *end = p + n;
    json_t *o = json_object();
    while (p < end) {
        uint64_t key = pb_varint(&p, end);
        unsigned num = (unsigned)(key >> 3), wt = (unsigned)(key & 7);
        const pb_field_t *f = NULL;
        for (size_t i = 0; i < m->n; i++)
            if (m->f[i].num == num) f = &m->f[i];
        if (!f) fail_msg("protobuf: unexpected field %u", num);
        unsigned want = strchr("shmr", f->kind)            ? 2
                        : f->kind == 'd' || f->kind == 'x' ? 1
                        : f->kind == 'f'                   ? 5
                                                           : 0;
        if (wt != want) fail_msg("protobuf: field %s has wire type %u, not %u", f->name, wt, want);
        json_t *v = NULL;
        char tmp[64];
        if (wt == 2) {
            uint64_t len = pb_varint(&p, end);
            if (len > (uint64_t)(end - p)) fail_msg("protobuf: %s runs past its message", f->name);
            if (f->kind == 's') {
                v = json_stringn((const char *)p, (size_t)len);
                if (!v) fail_msg("protobuf: %s is not UTF-8", f->name);
            } else if (f->kind == 'h') {
                char hex[2 * 64 + 1];
                if (len > 64) fail_msg("protobuf: %s too long", f->name);
                for (size_t i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", p[i]);
                hex[2 * len] = 0;
                v = json_string(hex);
            } else {
                v = pb_to_json(p, (size_t)len, f->sub);
            }
            p += len;
        } else if (wt == 0) {
            uint64_t u = pb_varint(&p, end);
            if (f->kind == 'b') {
                if (u > 1) fail_msg("protobuf: bool %s is %llu", f->name, (unsigned long long)u);
                v = json_boolean(u);
            } else if (f->kind == 'i') {
                snprintf(tmp, sizeof(tmp), "%lld", (long long)(int64_t)u);
                v = json_string(tmp);
            } else {
                v = json_integer((json_int_t)u);
            }
        } else if (wt == 1) {
            uint64_t u = pb_le(&p, end, 8);
            if (f->kind == 'd') {
                double d;
                memcpy(&d, &u, 8);
                /* as OTLP/JSON writes what JSON numbers cannot hold */
                v = isfinite(d) ? json_real(d)
                                : json_string(isnan(d) ? "NaN"
                                              : d > 0  ? "Infinity"
                                                       : "-Infinity");
            } else {
                snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)u);
                v = json_string(tmp);
            }
        } else {
            v = json_integer((json_int_t)pb_le(&p, end, 4));
        }
        if (f->kind == 'r') {
            json_t *a = json_object_get(o, f->name);
            if (!a) json_object_set_new(o, f->name, a = json_array());
            json_array_append_new(a, v);
        } else {
            if (json_object_get(o, f->name)) fail_msg("protobuf: %s given twice", f->name);
            json_object_set_new(o, f->name, v);
        }
    }
    return o;
}

/* Spans received so far, over all bodies. */
static size_t received_spans(void)
{
    size_t total = 0;
    pthread_mutex_lock(&rcv.mu);
    for (int i = 0; i < rcv.nbodies; i++) {
        json_t *root = rcv.bodies[i][0] == '{' ? json_loads(rcv.bodies[i], 0, NULL)
                                               : pb_to_json((const uint8_t *)rcv.bodies[i],
                                                            rcv.body_lens[i], &request_m);
        assert_non_null(root);
        json_t *rs = json_object_get(root, "resourceSpans");
        for (size_t a = 0; a < json_array_size(rs); a++) {
            json_t *ss = json_object_get(json_array_get(rs, a), "scopeSpans");
            for (size_t b = 0; b < json_array_size(ss); b++)
                total += json_array_size(json_object_get(json_array_get(ss, b), "spans"));
        }
        json_decref(root);
    }
    pthread_mutex_unlock(&rcv.mu);
    return total;
}

static bool wait_for(bool (*cond)(void *), void *arg, uint64_t ms)
{
    uint64_t deadline = ms_now() + ms;
    while (ms_now() < deadline) {
        if (cond(arg)) return true;
        usleep(5000);
    }
    return cond(arg);
}

static bool have_spans(void *arg)
{
    return received_spans() >= *(size_t *)arg;
}
static bool have_failed_batch(void *arg)
{
    weft_otlp_stats_t s;
    weft_otlp_exporter_stats(arg, &s);
    return s.batches_failed >= 1;
}
/* The receiver has a body before the exporter reads the 2xx and counts it: wait for both. */
typedef struct {
    weft_span_exporter_t *e;
    uint64_t n;
} want_exported_t;
static bool have_exported(void *arg)
{
    want_exported_t *w = arg;
    weft_otlp_stats_t s;
    weft_otlp_exporter_stats(w->e, &s);
    return s.exported >= w->n;
}
static bool have_retries(void *arg)
{
    want_exported_t *w = arg;
    weft_otlp_stats_t s;
    weft_otlp_exporter_stats(w->e, &s);
    return s.retries >= w->n;
}

/* ---- option validation ---- */

static void expect_bad(const weft_otlp_options_t *o, const char *option)
{
    char err[256] = "";
    weft_span_exporter_t *e = weft_otlp_exporter_new(o, err, sizeof(err));
    if (e) {
        e->shutdown(e->arg);
        fail_msg("options with a bad %s were accepted", option);
    }
    if (strncmp(err, option, strlen(option)) != 0 || err[strlen(option)] != ':')
        fail_msg("error for %s does not name it: \"%s\"", option, err);
    assert_null(strchr(err, '\n'));
}

static void test_options(void **state)
{
    weft_otlp_options_t d;
    weft_otlp_options_init(&d);
    assert_string_equal(d.host, "127.0.0.1");
    assert_int_equal(d.port, 4318);
    assert_string_equal(d.path, "/v1/traces");
    assert_null(d.service_name);
    assert_int_equal(d.max_queue, 2048);
    assert_int_equal(d.max_batch, 512);
    assert_int_equal(d.flush_interval_ms, 1000);
    assert_int_equal(d.timeout_ms, 10000);
    assert_int_equal(d.shutdown_timeout_ms, 5000);
    assert_int_equal(d.max_attempts, 5);
    assert_int_equal(d.retry_initial_backoff_ms, 1000);
    assert_int_equal(d.retry_max_backoff_ms, 5000);
    d.service_name = "svc";

    weft_otlp_options_t o;
#define BAD(field, value, name)                                                                    \
    do {                                                                                           \
        o = d;                                                                                     \
        o.field = value;                                                                           \
        expect_bad(&o, name);                                                                      \
    } while (0)
    BAD(host, NULL, "host");
    BAD(host, "1.2.3.4:80", "host");
    BAD(host, "", "host");
    BAD(host, ".", "host");
    BAD(host, "-collector", "host");
    BAD(host, "collector-", "host");
    BAD(host, "a..b", "host");
    BAD(host, "a.-b", "host");
    BAD(host, "a b", "host");
    BAD(host, "col/lector", "host");
    BAD(host, "[::1]", "host");
    char label64[70], name254[260];
    memset(label64, 'a', 64);
    label64[64] = 0;
    BAD(host, label64, "host");
    for (size_t i = 0; i < 254; i++) name254[i] = i % 2 ? '.' : 'a';
    name254[253] = 'b';
    name254[254] = 0;
    BAD(host, name254, "host");
    /* numeric addresses and names are taken (a name is looked up when connecting), up to
     * a 63-byte label and a 253-byte name */
    char label63[64], name253[254];
    memcpy(label63, label64, 63);
    label63[63] = 0;
    memcpy(name253, name254, 253);
    name253[253] = 0;
    const char *const good[] = {"127.0.0.1",
                                "::1",
                                "localhost",
                                "otel-collector",
                                "otel_collector.observability.svc.cluster.local.",
                                "a.b-c.d1",
                                label63,
                                name253};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char err[256] = "";
        o = d;
        o.host = good[i];
        weft_span_exporter_t *e = weft_otlp_exporter_new(&o, err, sizeof(err));
        if (!e)
            fail_msg("host \"%.40s\" (%zu bytes) was refused: %s", good[i], strlen(good[i]), err);
        e->shutdown(e->arg);
    }
    BAD(resource_attributes, "k", "resource_attributes");
    BAD(resource_attributes, "a=1,k", "resource_attributes");
    BAD(resource_attributes, "=v", "resource_attributes");
    BAD(resource_attributes, " =v", "resource_attributes");
    BAD(resource_attributes, "k y=v", "resource_attributes");
    BAD(resource_attributes, "k\xc3\xa9=v", "resource_attributes");
    BAD(resource_attributes, "k=%zz", "resource_attributes");
    BAD(resource_attributes, "k=%4", "resource_attributes");
    BAD(resource_attributes, "k=a%00b", "resource_attributes");
    BAD(resource_attributes, "k=a\x01", "resource_attributes");
    char many[WEFT_OTLP_MAX_RESOURCE_BYTES + 2];
    size_t m = 0;
    for (unsigned i = 0; i <= WEFT_OTLP_MAX_RESOURCE_ATTRS; i++)
        m += (size_t)snprintf(many + m, sizeof(many) - m, "%sk%u=v", i ? "," : "", i);
    BAD(resource_attributes, many, "resource_attributes"); /* 65 pairs */
    memset(many, 'x', sizeof(many) - 1);
    memcpy(many, "k=", 2);
    many[WEFT_OTLP_MAX_RESOURCE_BYTES + 1] = 0;
    BAD(resource_attributes, many, "resource_attributes"); /* 4097 bytes */
    BAD(headers, "x", "headers");
    BAD(headers, "content-type=text/plain", "headers");
    BAD(headers, "Content-Length=1", "headers");
    BAD(headers, "transfer-encoding=chunked", "headers");
    BAD(headers, "Content-Encoding=gzip", "headers");
    BAD(headers, "a(b=x", "headers");
    BAD(headers, "x-key=ab%0D%0Aevil: 1", "headers");
    BAD(headers, "x-key=%7F", "headers");
    /* a refusal never quotes a value: headers carry API keys */
    {
        char err[256] = "";
        o = d;
        o.headers = "x-api-key=s3cr3t%0a";
        assert_null(weft_otlp_exporter_new(&o, err, sizeof(err)));
        assert_non_null(strstr(err, "control character"));
        assert_null(strstr(err, "s3cr3t"));
    }
    char longv[300];
    memset(longv, 'v', 256);
    longv[256] = 0;
    BAD(service_version, longv, "service_version");
    BAD(port, 0, "port");
    BAD(path, NULL, "path");
    BAD(path, "v1/traces", "path");
    BAD(path, "/v1 traces", "path");
    BAD(service_name, NULL, "service_name");
    BAD(service_name, "", "service_name");
    BAD(max_queue, 0, "max_queue");
    BAD(max_queue, WEFT_OTLP_MAX_QUEUE + 1, "max_queue");
    BAD(max_batch, 0, "max_batch");
    BAD(max_batch, WEFT_OTLP_MAX_BATCH + 1, "max_batch");
    BAD(flush_interval_ms, 0, "flush_interval_ms");
    BAD(timeout_ms, 0, "timeout_ms");
    BAD(timeout_ms, WEFT_OTLP_MAX_TIMEOUT + 1, "timeout_ms");
    BAD(shutdown_timeout_ms, WEFT_OTLP_MAX_TIMEOUT + 1, "shutdown_timeout_ms");
    BAD(protocol, (weft_otlp_protocol_t)2, "protocol");
    BAD(max_attempts, 0, "max_attempts");
    BAD(max_attempts, WEFT_OTLP_MAX_ATTEMPTS + 1, "max_attempts");
    BAD(retry_initial_backoff_ms, 0, "retry_initial_backoff_ms");
    BAD(retry_initial_backoff_ms, WEFT_OTLP_MAX_TIMEOUT + 1, "retry_initial_backoff_ms");
    BAD(retry_max_backoff_ms, 0, "retry_max_backoff_ms");
    BAD(retry_max_backoff_ms, WEFT_OTLP_MAX_TIMEOUT + 1, "retry_max_backoff_ms");
#undef BAD
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    o = d;
    o.service_name = longname;
    expect_bad(&o, "service_name");
    assert_null(weft_otlp_exporter_new(NULL, NULL, 0));

    /* good options (IPv6 host, shutdown timeout 0) start and stop with nothing sent */
    o = d;
    o.host = "::1";
    o.shutdown_timeout_ms = 0;
    char err[256];
    weft_span_exporter_t *e = weft_otlp_exporter_new(&o, err, sizeof(err));
    assert_non_null(e);
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.exported + s.dropped_queue_full + s.dropped_failed, 0);
    e->shutdown(e->arg);

    /* the stats getter refuses another kind of exporter */
    weft_span_exporter_t *mem = weft_trace_memory_exporter_new(1);
    assert_int_equal(weft_otlp_exporter_stats(mem, &s), WEFT_EINVAL);
    assert_int_equal(weft_otlp_exporter_stats(NULL, &s), WEFT_EINVAL);
    mem->shutdown(mem->arg);
}

/* ---- the JSON ---- */

static json_t *find_span(json_t *spans, const char *name)
{
    for (size_t i = 0; i < json_array_size(spans); i++) {
        json_t *s = json_array_get(spans, i);
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0) return s;
    }
    fail_msg("span %s not received", name);
    return NULL;
}

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) fail_msg("%s is not a string", key);
    return json_string_value(v);
}

static json_t *attr_value(json_t *attrs, const char *key)
{
    assert_true(json_is_array(attrs));
    for (size_t i = 0; i < json_array_size(attrs); i++) {
        json_t *kv = json_array_get(attrs, i);
        if (strcmp(str_of(kv, "key"), key) == 0) {
            json_t *v = json_object_get(kv, "value");
            assert_true(json_is_object(v));
            assert_int_equal(json_object_size(v), 1); /* exactly one of the oneof */
            return v;
        }
    }
    fail_msg("attribute %s missing", key);
    return NULL;
}

static void assert_hex(const char *s, size_t len)
{
    assert_int_equal(strlen(s), len);
    for (size_t i = 0; i < len; i++) assert_non_null(strchr("0123456789abcdef", s[i]));
}

static uint64_t assert_decimal(const char *s)
{
    assert_true(s[0] != 0);
    for (const char *p = s; *p; p++) assert_true(*p >= '0' && *p <= '9');
    return strtoull(s, NULL, 10);
}

/* Spans of every shape (remote parent with tracestate, every attribute type, an event, each
 * status) through an exporter with the given protocol; the body, read back as OTLP/JSON
 * (protobuf through pb_to_json), says the same either way. */
static void rich_batch(weft_otlp_protocol_t protocol)
{
    receiver_start(true);
    weft_otlp_options_t o;
    test_options_for(&o, rcv.port, 2048, 512, 200, 5000);
    o.protocol = protocol;
    weft_span_exporter_t *e = exporter_from(&o);
    weft_tracer_t *t = new_tracer(e);

    weft_trace_context_t parent;
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const char *ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    assert_int_equal(weft_traceparent_parse(tp, strlen(tp), &parent), 0);
    assert_int_equal(weft_tracestate_parse(ts, strlen(ts), &parent), 0);

    uint64_t before = weft_wall_ns();
    char server_id[17] = "", client_id[17] = "", root_trace[33] = "";
    weft_span_t *server = weft_span_start(t, "server-op", WEFT_SPAN_SERVER, &parent);
    assert_true(weft_span_is_recording(server));
    weft_trace_hex(weft_span_context(server)->span_id, 8, server_id);
    weft_span_t *client =
        weft_span_start(t, "client-op", WEFT_SPAN_CLIENT, weft_span_context(server));
    weft_trace_hex(weft_span_context(client)->span_id, 8, client_id);
    weft_span_set_attr_str(client, "peer.service", "db \"main\"");
    weft_span_set_attr_int(client, "retries", -42);
    weft_span_set_attr_int(client, "big", INT64_C(9007199254740993)); /* not a double */
    weft_span_set_attr_double(client, "ratio", 0.25);
    weft_span_set_attr_bool(client, "cached", true);
    weft_span_set_attr_bool(client, "stale", false);
    weft_attr_t ev[] = {WEFT_ATTR_INT("attempt", 2), WEFT_ATTR_STR("reason", "timeout")};
    weft_span_add_event(client, "retry", ev, 2);
    weft_span_set_status(client, WEFT_SPAN_STATUS_ERROR, "boom");
    weft_span_end(client);
    weft_span_end(server);
    weft_span_t *root = weft_span_start(t, "root-op", WEFT_SPAN_INTERNAL, NULL);
    weft_trace_hex(weft_span_context(root)->trace_id, 16, root_trace);
    weft_span_set_status(root, WEFT_SPAN_STATUS_OK, NULL);
    weft_span_end(root);
    uint64_t after = weft_wall_ns();

    size_t want = 3;
    assert_true(wait_for(have_spans, &want, 5000));
    assert_true(wait_for(have_exported, &(want_exported_t){e, 3}, 5000));
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.exported, 3);
    assert_true(s.batches_sent >= 1);
    assert_int_equal(s.batches_failed + s.dropped_failed + s.dropped_queue_full, 0);

    pthread_mutex_lock(&rcv.mu);
    assert_string_equal(rcv.request_line, "POST /v1/traces HTTP/1.1");
    /* all three in one body: the flush interval started with the first */
    assert_int_equal(rcv.nbodies, 1);
    json_t *body;
    if (protocol == WEFT_OTLP_HTTP_PROTOBUF) {
        assert_string_equal(rcv.content_type, "application/x-protobuf");
        body = pb_to_json((const uint8_t *)rcv.bodies[0], rcv.body_lens[0], &request_m);
    } else {
        assert_string_equal(rcv.content_type, "application/json");
        json_error_t jerr;
        body = json_loads(rcv.bodies[0], JSON_REJECT_DUPLICATES, &jerr);
        if (!body) fail_msg("body is not JSON: %s", jerr.text);
    }
    pthread_mutex_unlock(&rcv.mu);

    assert_int_equal(json_object_size(body), 1);
    json_t *rs = json_object_get(body, "resourceSpans");
    assert_int_equal(json_array_size(rs), 1);
    json_t *r0 = json_array_get(rs, 0);
    json_t *rattrs = json_object_get(json_object_get(r0, "resource"), "attributes");
    assert_string_equal(str_of(attr_value(rattrs, "service.name"), "stringValue"), "otlp-unit");
    json_t *ss = json_object_get(r0, "scopeSpans");
    assert_int_equal(json_array_size(ss), 1);
    json_t *ss0 = json_array_get(ss, 0);
    assert_string_equal(str_of(json_object_get(ss0, "scope"), "name"), "weft");
    json_t *spans = json_object_get(ss0, "spans");
    assert_int_equal(json_array_size(spans), 3);

    /* the server span: child of a remote parent, tracestate carried */
    json_t *sv = find_span(spans, "server-op");
    assert_string_equal(str_of(sv, "traceId"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(str_of(sv, "spanId"), server_id);
    assert_hex(server_id, 16);
    assert_string_equal(str_of(sv, "parentSpanId"), "b7ad6b7169203331");
    assert_string_equal(str_of(sv, "traceState"), ts);
    assert_int_equal(json_integer_value(json_object_get(sv, "kind")), 2);
    /* sampled, parent remoteness known (0x100) and remote (0x200) */
    assert_int_equal(json_integer_value(json_object_get(sv, "flags")), 0x301);
    uint64_t st = assert_decimal(str_of(sv, "startTimeUnixNano"));
    uint64_t en = assert_decimal(str_of(sv, "endTimeUnixNano"));
    assert_true(before <= st && st <= en && en <= after);
    assert_null(json_object_get(sv, "status")); /* UNSET: omitted */
    assert_null(json_object_get(sv, "events"));

    /* the client span: every attribute type, an event, an error status */
    json_t *cl = find_span(spans, "client-op");
    assert_string_equal(str_of(cl, "traceId"), "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(str_of(cl, "spanId"), client_id);
    assert_string_equal(str_of(cl, "parentSpanId"), server_id);
    assert_string_equal(str_of(cl, "traceState"), ts); /* inherited */
    assert_int_equal(json_integer_value(json_object_get(cl, "kind")), 3);
    assert_int_equal(json_integer_value(json_object_get(cl, "flags")), 0x101);
    json_t *ca = json_object_get(cl, "attributes");
    assert_string_equal(str_of(attr_value(ca, "peer.service"), "stringValue"), "db \"main\"");
    assert_string_equal(str_of(attr_value(ca, "retries"), "intValue"), "-42");
    assert_string_equal(str_of(attr_value(ca, "big"), "intValue"), "9007199254740993");
    json_t *ratio = json_object_get(attr_value(ca, "ratio"), "doubleValue");
    assert_true(json_is_number(ratio));
    assert_true(json_number_value(ratio) == 0.25);
    assert_true(json_is_true(json_object_get(attr_value(ca, "cached"), "boolValue")));
    assert_true(json_is_false(json_object_get(attr_value(ca, "stale"), "boolValue")));
    json_t *evs = json_object_get(cl, "events");
    assert_int_equal(json_array_size(evs), 1);
    json_t *e0 = json_array_get(evs, 0);
    assert_string_equal(str_of(e0, "name"), "retry");
    uint64_t et = assert_decimal(str_of(e0, "timeUnixNano"));
    assert_true(before <= et && et <= after);
    json_t *ea = json_object_get(e0, "attributes");
    assert_int_equal(json_array_size(ea), 2);
    assert_string_equal(str_of(attr_value(ea, "attempt"), "intValue"), "2");
    assert_string_equal(str_of(attr_value(ea, "reason"), "stringValue"), "timeout");
    json_t *cst = json_object_get(cl, "status");
    assert_int_equal(json_integer_value(json_object_get(cst, "code")), 2);
    assert_string_equal(str_of(cst, "message"), "boom");

    /* the root span: a new trace, no parentSpanId, no traceState, status OK */
    json_t *rt = find_span(spans, "root-op");
    assert_string_equal(str_of(rt, "traceId"), root_trace);
    assert_hex(str_of(rt, "traceId"), 32);
    assert_hex(str_of(rt, "spanId"), 16);
    assert_null(json_object_get(rt, "parentSpanId"));
    assert_null(json_object_get(rt, "traceState"));
    assert_int_equal(json_integer_value(json_object_get(rt, "kind")), 1);
    assert_int_equal(json_integer_value(json_object_get(rt, "flags")), 0x101);
    json_t *rst = json_object_get(rt, "status");
    assert_int_equal(json_integer_value(json_object_get(rst, "code")), 1);
    assert_null(json_object_get(rst, "message"));
    assert_int_equal(json_array_size(json_object_get(rt, "attributes")), 0);
    json_decref(body);

    uint64_t t0 = ms_now();
    weft_tracer_free(t); /* nothing queued: returns at once */
    assert_true(ms_now() - t0 < 1000);
    receiver_stop();
}

static void test_json(void **state)
{
    rich_batch(WEFT_OTLP_HTTP_JSON);
}

static void test_protobuf(void **state)
{
    rich_batch(WEFT_OTLP_HTTP_PROTOBUF);
}

/* protobuf's strings must be UTF-8 (receivers refuse the whole request otherwise): each
 * byte that starts no valid sequence is one U+FFFD, in names, keys, values, events and
 * status messages, as in JSON; pb_to_json fails on any string that is not UTF-8. Doubles
 * JSON cannot write go as they are, and a long span (over 127 bytes of content, nested in
 * messages whose lengths need several bytes) reads back whole. */
static void test_protobuf_edge_values(void **state)
{
    receiver_start(true);
    weft_otlp_options_t o;
    test_options_for(&o, rcv.port, 2048, 512, 50, 5000);
    o.protocol = WEFT_OTLP_HTTP_PROTOBUF;
    o.resource_attributes = "bad=x%c3"; /* values are %-decoded */
    weft_tracer_t *t = new_tracer(exporter_from(&o));
    weft_span_t *sp = weft_span_start(t, "na\xffme", WEFT_SPAN_INTERNAL, NULL);
    weft_span_set_attr_str(sp, "bad-utf8",
                           "a\xff"
                           "b\xc0\xaf"
                           "c");
    weft_span_set_attr_str(sp, "k\xed\xa0\x80", "surrogate key");
    weft_span_set_attr_double(sp, "nan", NAN);
    weft_span_set_attr_double(sp, "ninf", -INFINITY);
    char longv[WEFT_SPAN_VALUE_MAX]; /* 255 bytes: a two-byte length */
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = 0;
    weft_span_set_attr_str(sp, "long", longv);
    weft_attr_t ev[] = {WEFT_ATTR_STR("why", "\xf5")};
    weft_span_add_event(sp, "ev\xc3", ev, 1);
    weft_span_set_status(sp, WEFT_SPAN_STATUS_ERROR, "bo\xe2\x82om");
    weft_span_end(sp);
    size_t want = 1;
    assert_true(wait_for(have_spans, &want, 5000));
    pthread_mutex_lock(&rcv.mu);
    json_t *body = pb_to_json((const uint8_t *)rcv.bodies[0], rcv.body_lens[0], &request_m);
    pthread_mutex_unlock(&rcv.mu);
    json_t *r0 = json_array_get(json_object_get(body, "resourceSpans"), 0);
    json_t *rattrs = json_object_get(json_object_get(r0, "resource"), "attributes");
    assert_string_equal(str_of(attr_value(rattrs, "bad"), "stringValue"), "x\xef\xbf\xbd");
    json_t *ss0 = json_array_get(json_object_get(r0, "scopeSpans"), 0);
    json_t *d = json_array_get(json_object_get(ss0, "spans"), 0);
    assert_string_equal(str_of(d, "name"), "na\xef\xbf\xbdme");
    json_t *a = json_object_get(d, "attributes");
    assert_string_equal(str_of(attr_value(a, "bad-utf8"), "stringValue"),
                        "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\xef\xbf\xbd"
                        "c");
    assert_string_equal(
        str_of(attr_value(a, "k\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"), "stringValue"),
        "surrogate key");
    assert_string_equal(str_of(attr_value(a, "nan"), "doubleValue"), "NaN");
    assert_string_equal(str_of(attr_value(a, "ninf"), "doubleValue"), "-Infinity");
    assert_string_equal(str_of(attr_value(a, "long"), "stringValue"), longv);
    json_t *e0 = json_array_get(json_object_get(d, "events"), 0);
    assert_string_equal(str_of(e0, "name"), "ev\xef\xbf\xbd");
    assert_string_equal(str_of(attr_value(json_object_get(e0, "attributes"), "why"), "stringValue"),
                        "\xef\xbf\xbd");
    assert_string_equal(str_of(json_object_get(d, "status"), "message"),
                        "bo\xef\xbf\xbd\xef\xbf\xbdom");
    json_decref(body);
    weft_tracer_free(t);
    receiver_stop();
}

/* Values JSON cannot carry as they are, limits that drop data, and the metrics counters. */
static void test_edge_values(void **state)
{
    receiver_start(true);
    weft_span_exporter_t *e = new_exporter(rcv.port, 2048, 512, 50, 5000);
    weft_metrics_registry_t *reg = weft_metrics_registry_new();
    assert_non_null(reg);
    assert_int_equal(weft_otlp_exporter_metrics(e, reg), 0);
    assert_int_equal(weft_otlp_exporter_metrics(e, reg), WEFT_EEXIST); /* one per registry */
    assert_int_equal(weft_otlp_exporter_metrics(e, NULL), WEFT_EINVAL);
    weft_tracer_t *t = new_tracer(e);

    weft_span_t *sp = weft_span_start(t, "edge", WEFT_SPAN_INTERNAL, NULL);
    weft_span_set_attr_double(sp, "nan", NAN);
    weft_span_set_attr_double(sp, "pinf", INFINITY);
    weft_span_set_attr_double(sp, "ninf", -INFINITY);
    weft_span_set_attr_double(sp, "tiny", 5e-324);
    weft_span_set_attr_str(sp, "bad-utf8",
                           "a\xff"
                           "b\xc0\xaf"
                           "c");
    weft_span_set_attr_str(sp, "ctl", "tab\there\nnew\x01");
    for (int i = 0; i < WEFT_SPAN_MAX_ATTRS; i++) { /* 26 fit under the limit, 6 are dropped */
        char k[16];
        snprintf(k, sizeof(k), "k%02d", i);
        weft_span_set_attr_int(sp, k, i);
    }
    for (int i = 0; i < WEFT_SPAN_MAX_EVENTS + 2; i++) weft_span_add_event(sp, "ev", NULL, 0);
    weft_span_set_status(sp, WEFT_SPAN_STATUS_ERROR, "quote \" and \\ backslash");
    weft_span_end(sp);

    size_t want = 1;
    assert_true(wait_for(have_spans, &want, 5000));
    assert_true(wait_for(have_exported, &(want_exported_t){e, 1}, 5000));
    pthread_mutex_lock(&rcv.mu);
    json_error_t jerr;
    json_t *body = json_loads(rcv.bodies[0], 0, &jerr);
    pthread_mutex_unlock(&rcv.mu);
    if (!body) fail_msg("body is not JSON: %s", jerr.text);
    json_t *spans = json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(body, "resourceSpans"), 0),
                                       "scopeSpans"),
                       0),
        "spans");
    json_t *d = find_span(spans, "edge");
    json_t *a = json_object_get(d, "attributes");
    assert_int_equal(json_array_size(a), WEFT_SPAN_MAX_ATTRS);
    assert_string_equal(str_of(attr_value(a, "nan"), "doubleValue"), "NaN");
    assert_string_equal(str_of(attr_value(a, "pinf"), "doubleValue"), "Infinity");
    assert_string_equal(str_of(attr_value(a, "ninf"), "doubleValue"), "-Infinity");
    assert_true(json_real_value(json_object_get(attr_value(a, "tiny"), "doubleValue")) == 5e-324);
    /* each byte that is not valid UTF-8 is one U+FFFD */
    assert_string_equal(str_of(attr_value(a, "bad-utf8"), "stringValue"),
                        "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\xef\xbf\xbd"
                        "c");
    assert_string_equal(str_of(attr_value(a, "ctl"), "stringValue"), "tab\there\nnew\x01");
    assert_int_equal(json_integer_value(json_object_get(d, "droppedAttributesCount")), 6);
    assert_int_equal(json_array_size(json_object_get(d, "events")), WEFT_SPAN_MAX_EVENTS);
    assert_int_equal(json_integer_value(json_object_get(d, "droppedEventsCount")), 2);
    assert_string_equal(str_of(json_object_get(d, "status"), "message"),
                        "quote \" and \\ backslash");
    json_decref(body);

    /* the counters in the registry match the stats */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(weft_metrics_write(reg, &text, &len), 0);
    assert_non_null(strstr(text, "\nweft_otlp_spans_exported_total 1\n"));
    assert_non_null(strstr(text, "\nweft_otlp_batches_total{result=\"sent\"} 1\n"));
    assert_non_null(strstr(text, "\nweft_otlp_batches_total{result=\"failed\"} 0\n"));
    assert_non_null(strstr(text, "\nweft_otlp_spans_dropped_total{reason=\"queue_full\"} 0\n"));
    assert_non_null(strstr(text, "\nweft_otlp_spans_dropped_total{reason=\"failed\"} 0\n"));
    free(text);
    weft_tracer_free(t);
    weft_metrics_registry_free(reg); /* after the exporter, as documented */
    receiver_stop();
}

/* ---- OpenTelemetry's environment variables ---- */

static const char *const otel_vars[] = {"OTEL_SDK_DISABLED",
                                        "OTEL_TRACES_EXPORTER",
                                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                                        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                        "OTEL_SERVICE_NAME",
                                        "OTEL_RESOURCE_ATTRIBUTES",
                                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                                        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                                        "OTEL_BSP_SCHEDULE_DELAY",
                                        "OTEL_BSP_MAX_QUEUE_SIZE",
                                        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                                        "OTEL_BSP_EXPORT_TIMEOUT",
                                        "OTEL_TRACES_SAMPLER",
                                        "OTEL_TRACES_SAMPLER_ARG",
                                        "OTEL_PROPAGATORS",
                                        "OTEL_EXPORTER_OTLP_HEADERS",
                                        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                                        "OTEL_EXPORTER_OTLP_COMPRESSION",
                                        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"};

static void otel_clear(void)
{
    for (size_t i = 0; i < sizeof(otel_vars) / sizeof(otel_vars[0]); i++) unsetenv(otel_vars[i]);
}

/* from_env with only the given NAME=VALUE variables set: its result, env filled, err. */
static int otel_with(weft_otlp_env_t *e, char *err, size_t errlen, int n, ...)
{
    otel_clear();
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *name = va_arg(ap, const char *);
        setenv(name, va_arg(ap, const char *), 1);
    }
    va_end(ap);
    err[0] = 0;
    return weft_otlp_options_from_env(e, "svc-default", err, errlen);
}

/* Starts the receiver and an exporter with o (to the receiver, service "orders", flushing
 * every 50 ms), ends one span and waits until the receiver has it. Returns the tracer. */
static weft_tracer_t *export_one_span(weft_otlp_options_t *o)
{
    receiver_start(true);
    o->port = rcv.port;
    o->service_name = "orders";
    o->flush_interval_ms = 50;
    weft_tracer_t *t = new_tracer(exporter_from(o));
    weft_span_end(weft_span_start(t, "op", WEFT_SPAN_INTERNAL, NULL));
    size_t want = 1;
    assert_true(wait_for(have_spans, &want, 5000));
    return t;
}

/* service.name, the telemetry.sdk.* defaults, service.version and resource_attributes in the
 * batch's resource; the list's own keys win over the defaults, the last of a key wins. */
static void test_resource(void **state)
{
    weft_otlp_options_t o;
    weft_otlp_options_init(&o);
    o.service_version = "1.2.3";
    o.resource_attributes = " deployment.environment = prod ,, k=a%2Cb%20c , service.name=no,"
                            "telemetry.sdk.language=cpp,k=last\xc3\xa9,empty=";
    weft_tracer_t *t = export_one_span(&o);
    pthread_mutex_lock(&rcv.mu);
    json_error_t jerr;
    json_t *body = json_loads(rcv.bodies[0], JSON_REJECT_DUPLICATES, &jerr);
    pthread_mutex_unlock(&rcv.mu);
    assert_non_null(body);
    json_t *r0 = json_array_get(json_object_get(body, "resourceSpans"), 0);
    json_t *rattrs = json_object_get(json_object_get(r0, "resource"), "attributes");
    static const char *const want_attrs[][2] = {{"service.name", "orders"},
                                                {"telemetry.sdk.name", "weft"},
                                                {"telemetry.sdk.language", "cpp"},
                                                {"telemetry.sdk.version", WEFT_VERSION},
                                                {"service.version", "1.2.3"},
                                                {"deployment.environment", "prod"},
                                                {"k", "last\xc3\xa9"},
                                                {"empty", ""}};
    size_t n = sizeof(want_attrs) / sizeof(want_attrs[0]);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(str_of(attr_value(rattrs, want_attrs[i][0]), "stringValue"),
                            want_attrs[i][1]);
    assert_int_equal(json_array_size(rattrs), n); /* no key twice, service.name=no dropped */
    json_decref(body);
    weft_tracer_free(t);
    receiver_stop();
}

/* headers: sent with each batch after Content-Type; the last of a name (in any case) wins. */
static void test_headers(void **state)
{
    weft_otlp_options_t o;
    weft_otlp_options_init(&o);
    o.headers = "x-api-key=first, Authorization = Bearer%20t0k ,X-Api-Key=last,x-tab=a%09b";
    weft_tracer_t *t = export_one_span(&o);
    pthread_mutex_lock(&rcv.mu);
    char head[sizeof(rcv.head)];
    memcpy(head, rcv.head, sizeof(head));
    pthread_mutex_unlock(&rcv.mu);
    assert_non_null(strstr(head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(head, "\r\nAuthorization: Bearer t0k\r\n"));
    assert_non_null(strstr(head, "\r\nX-Api-Key: last\r\n"));
    assert_non_null(strstr(head, "\r\nx-tab: a\tb\r\n"));
    assert_null(strstr(head, "first"));
    assert_null(strcasestr(strstr(head, "X-Api-Key") + 1, "x-api-key")); /* once */
    weft_tracer_free(t);
    receiver_stop();
}

/* The gzip member in b[0..n) inflated, NUL-terminated (malloc'd), or NULL. */
static char *gunzip(const char *b, size_t n)
{
    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK) return NULL; /* a gzip wrapper only */
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    z.next_in = (Bytef *)b;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap - 1;
    int r = inflate(&z, Z_FINISH);
    size_t len = cap - 1 - z.avail_out;
    inflateEnd(&z);
    if (r != Z_STREAM_END || z.avail_in != 0) {
        free(out);
        return NULL;
    }
    out[len] = 0;
    return out;
}

/* gzip: Content-Encoding: gzip, and the body inflates to the JSON of the batch; a retry
 * resends the same compressed bytes. */
static void test_gzip(void **state)
{
    receiver_start_failing(503, 1, "0");
    weft_otlp_options_t o;
    test_options_for(&o, rcv.port, 2048, 512, 600000, 5000);
    o.gzip = true;
    weft_span_exporter_t *e = exporter_from(&o);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 300);
    weft_tracer_free(t); /* one batch of 300: refused once, then taken */
    pthread_mutex_lock(&rcv.mu);
    assert_int_equal(rcv.nbodies, 2);
    assert_non_null(strstr(rcv.head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(rcv.head, "\r\nContent-Encoding: gzip\r\n"));
    assert_int_equal(rcv.body_lens[0], rcv.body_lens[1]);
    assert_memory_equal(rcv.bodies[0], rcv.bodies[1], rcv.body_lens[0]);
    char *json = gunzip(rcv.bodies[1], rcv.body_lens[1]);
    size_t zlen = rcv.body_lens[1];
    pthread_mutex_unlock(&rcv.mu);
    assert_non_null(json);
    json_error_t jerr;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) fail_msg("inflated body is not JSON: %s", jerr.text);
    json_t *rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 300);
    assert_non_null(find_span(spans, "span-299"));
    /* 300 similar spans: under a third of the JSON (their random ids do not compress) */
    if (zlen * 3 > strlen(json))
        fail_msg("gzip body %zu bytes for %zu bytes of JSON", zlen, strlen(json));
    json_decref(root);
    free(json);
    receiver_stop();
}

static void expect_env_bad(const char *var, const char *value, const char *want_in_err)
{
    weft_otlp_env_t e;
    char err[256];
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, var, value), WEFT_EINVAL);
    if (strncmp(err, var, strlen(var)) != 0 || !strstr(err, want_in_err))
        fail_msg("%s=%s: error \"%s\" should name the variable and say \"%s\"", var, value, err,
                 want_in_err);
}

static void test_env(void **state)
{
    weft_otlp_env_t e;
    char err[256];
    /* nothing asks for an exporter */
    assert_int_equal(otel_with(&e, err, sizeof(err), 0), 0);
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, "OTEL_SERVICE_NAME", "x"), 0);
    /* a base endpoint gets v1/traces; a host name is kept, to be looked up */
    assert_int_equal(
        otel_with(&e, err, sizeof(err), 1, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
        1);
    assert_string_equal(e.o.host, "localhost");
    assert_int_equal(e.o.port, 4318);
    assert_string_equal(e.o.path, "/v1/traces");
    assert_string_equal(e.o.service_name, "svc-default");
    assert_int_equal(e.o.max_batch, 512); /* the defaults stay */
    assert_int_equal(
        otel_with(&e, err, sizeof(err), 1, "OTEL_EXPORTER_OTLP_ENDPOINT", "HTTP://10.1.2.3/otel/"),
        1);
    assert_string_equal(e.o.host, "10.1.2.3");
    assert_int_equal(e.o.port, 80);
    assert_string_equal(e.o.path, "/otel/v1/traces");
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:9/otel?k=v"),
                     1);
    assert_string_equal(e.o.path, "/otel/v1/traces?k=v");
    /* the traces endpoint is used as it is, and wins over the base */
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                               "http://[::1]:4318", "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:1"),
                     1);
    assert_string_equal(e.o.host, "::1");
    assert_int_equal(e.o.port, 4318);
    assert_string_equal(e.o.path, "/");
    /* OTEL_TRACES_EXPORTER=otlp alone: OpenTelemetry's default endpoint */
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, "OTEL_TRACES_EXPORTER", "otlp"), 1);
    assert_int_equal(e.o.port, 4318);
    assert_string_equal(e.o.path, "/v1/traces");
    /* switched off */
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "none",
                               "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                     0);
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_SDK_DISABLED", "TRUE",
                               "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                     0);
    /* names, settings */
    assert_int_equal(otel_with(&e, err, sizeof(err), 7, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:1", "OTEL_RESOURCE_ATTRIBUTES",
                               "deployment.environment=prod, service.name=ord%20ers ,x=y",
                               "OTEL_EXPORTER_OTLP_TIMEOUT", "100",
                               "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250",
                               "OTEL_BSP_SCHEDULE_DELAY", "5000", "OTEL_BSP_MAX_QUEUE_SIZE", "4096",
                               "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
                     1);
    assert_string_equal(e.o.service_name, "ord ers");
    assert_string_equal(e.o.resource_attributes,
                        "deployment.environment=prod, service.name=ord%20ers ,x=y");
    assert_int_equal(e.o.timeout_ms, 250); /* the traces variable wins */
    assert_int_equal(e.o.flush_interval_ms, 5000);
    assert_int_equal(e.o.max_queue, 4096);
    assert_int_equal(e.o.max_batch, 64);
    /* OTEL_BSP_EXPORT_TIMEOUT lowers the request timeout, never raises it */
    assert_int_equal(otel_with(&e, err, sizeof(err), 3, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_TIMEOUT", "2000", "OTEL_BSP_EXPORT_TIMEOUT",
                               "500"),
                     1);
    assert_int_equal(e.o.timeout_ms, 500);
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_BSP_EXPORT_TIMEOUT", "30000"),
                     1);
    assert_int_equal(e.o.timeout_ms, 10000);
    assert_int_equal(otel_with(&e, err, sizeof(err), 3, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:1", "OTEL_SERVICE_NAME", "named",
                               "OTEL_RESOURCE_ATTRIBUTES", "service.name=other"),
                     1);
    assert_string_equal(e.o.service_name, "named");
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL",
                               "http/protobuf"),
                     1);
    assert_int_equal(e.o.protocol, WEFT_OTLP_HTTP_PROTOBUF);
    assert_int_equal(otel_with(&e, err, sizeof(err), 3, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf",
                               "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
                     1);
    assert_int_equal(e.o.protocol, WEFT_OTLP_HTTP_JSON); /* the traces variable wins */
    assert_int_equal(
        otel_with(&e, err, sizeof(err), 1, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"), 1);
    assert_int_equal(e.o.protocol, WEFT_OTLP_HTTP_JSON); /* weft's default */
    /* refusals name the variable */
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318", "https");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "http://");
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, "OTEL_EXPORTER_OTLP_ENDPOINT",
                               "http://otel-collector.monitoring:4318"),
                     1);
    assert_string_equal(e.o.host, "otel-collector.monitoring");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://coll_ector-:4318", "host name");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a..b:4318", "host name");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[collector]:4318", "IPv6");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:0", "port");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:65536", "port");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:x", "port");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1:4318", "']'");
    expect_env_bad("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1/a b", "printable");
    expect_env_bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1/#f", "fragment");
    expect_env_bad("OTEL_TRACES_EXPORTER", "zipkin", "otlp only");
    /* compression: gzip or none, the traces variable wins */
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                     1);
    assert_true(e.o.gzip);
    assert_int_equal(otel_with(&e, err, sizeof(err), 3, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_COMPRESSION", "gzip",
                               "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
                     1);
    assert_false(e.o.gzip);
    assert_int_equal(otel_with(&e, err, sizeof(err), 1, "OTEL_TRACES_EXPORTER", "otlp"), 1);
    assert_false(e.o.gzip); /* the default, as in OpenTelemetry's SDKs */
    static const char *const bad_compression[][2] = {
        {"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"},
        {"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP"}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                                   bad_compression[i][0], bad_compression[i][1]),
                         WEFT_EINVAL);
        if (strncmp(err, bad_compression[i][0], strlen(bad_compression[i][0])) != 0 ||
            !strstr(err, "gzip or none"))
            fail_msg("%s: error \"%s\"", bad_compression[i][0], err);
    }
    /* headers: the traces variable wins; a refusal names the variable, never the value */
    assert_int_equal(otel_with(&e, err, sizeof(err), 3, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_HEADERS", "a=1",
                               "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=k%20v"),
                     1);
    assert_string_equal(e.o.headers, "api-key=k%20v");
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr3t%0d"),
                     WEFT_EINVAL);
    assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_HEADERS:"));
    assert_null(strstr(err, "s3cr3t"));
    static const char *const bad_attrs[][2] = {{"a=1,b", "key=value"}, {"a=%g0", "hex"}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                                   "OTEL_RESOURCE_ATTRIBUTES", bad_attrs[i][0]),
                         WEFT_EINVAL);
        if (strncmp(err, "OTEL_RESOURCE_ATTRIBUTES", 24) != 0 || !strstr(err, bad_attrs[i][1]))
            fail_msg("OTEL_RESOURCE_ATTRIBUTES=%s: %s", bad_attrs[i][0], err);
    }
    static const char *const nums[] = {"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                                       "OTEL_BSP_SCHEDULE_DELAY", "OTEL_EXPORTER_OTLP_TIMEOUT",
                                       "OTEL_BSP_EXPORT_TIMEOUT"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        weft_otlp_env_t x;
        assert_int_equal(
            otel_with(&x, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp", nums[i], "0"),
            WEFT_EINVAL);
        assert_non_null(strstr(err, nums[i]));
        assert_int_equal(
            otel_with(&x, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp", nums[i], "12abc"),
            WEFT_EINVAL);
        assert_int_equal(otel_with(&x, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp", nums[i],
                                   "99999999999999999999999"),
                         WEFT_EINVAL);
    }
    assert_int_equal(otel_with(&e, err, sizeof(err), 2, "OTEL_TRACES_EXPORTER", "otlp",
                               "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                     WEFT_EINVAL);
    assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_PROTOCOL"));

    /* the sampler */
    weft_sampler_t sm = weft_sampler_always_off();
    otel_clear();
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), 0);
    assert_int_equal(sm.root, WEFT_SAMPLER_ALWAYS_OFF); /* unchanged */
    setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0.25", 1);
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), 1);
    assert_int_equal(sm.root, WEFT_SAMPLER_RATIO);
    assert_true(sm.ratio == 0.25 && sm.parent_based);
    setenv("OTEL_TRACES_SAMPLER", "always_on", 1);
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), 1);
    assert_true(sm.root == WEFT_SAMPLER_ALWAYS_ON && !sm.parent_based);
    setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off", 1);
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), 1);
    assert_true(sm.root == WEFT_SAMPLER_ALWAYS_OFF && sm.parent_based);
    setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    unsetenv("OTEL_TRACES_SAMPLER_ARG");
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), 1);
    assert_true(sm.root == WEFT_SAMPLER_RATIO && sm.ratio == 1.0 && !sm.parent_based);
    static const char *const bad_args[] = {"1.5", "-0.1", "nan", "0x1p-2", "0.5x", "inf"};
    for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
        setenv("OTEL_TRACES_SAMPLER_ARG", bad_args[i], 1);
        assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), WEFT_EINVAL);
        assert_non_null(strstr(err, "OTEL_TRACES_SAMPLER_ARG"));
    }
    setenv("OTEL_TRACES_SAMPLER", "jaeger_remote", 1);
    assert_int_equal(weft_sampler_from_env(&sm, err, sizeof(err)), WEFT_EINVAL);
    assert_non_null(strstr(err, "OTEL_TRACES_SAMPLER:"));
    otel_clear();

    /* the propagators */
    unsigned mask = 99;
    assert_int_equal(weft_propagators_from_env(&mask, err, sizeof(err)), 0);
    assert_int_equal(mask, 99); /* unchanged */
    static const struct {
        const char *v;
        unsigned mask;
    } props[] = {
        {"tracecontext,baggage", WEFT_PROPAGATE_W3C},
        {" b3 , tracecontext ,", WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_W3C},
        /* the last context format listed wins extraction, as in OpenTelemetry's composite */
        {"tracecontext,b3", WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_WINS},
        {"tracecontext,b3multi,baggage",
         WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3_MULTI | WEFT_PROPAGATE_B3_WINS},
        {"b3,tracecontext,b3", WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_WINS},
        {"b3multi,tracecontext,baggage", WEFT_PROPAGATE_W3C | WEFT_PROPAGATE_B3_MULTI},
        {"b3,b3multi", WEFT_PROPAGATE_B3 | WEFT_PROPAGATE_B3_MULTI},
        {"b3multi", WEFT_PROPAGATE_B3_MULTI},
        {"none", 0},
        {"baggage", 0},
    };
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        setenv("OTEL_PROPAGATORS", props[i].v, 1);
        assert_int_equal(weft_propagators_from_env(&mask, err, sizeof(err)), 1);
        assert_int_equal(mask, props[i].mask);
    }
    static const char *const bad_props[] = {"jaeger", "tracecontext,xray", "b3 multi", "B3"};
    for (size_t i = 0; i < sizeof(bad_props) / sizeof(bad_props[0]); i++) {
        setenv("OTEL_PROPAGATORS", bad_props[i], 1);
        assert_int_equal(weft_propagators_from_env(&mask, err, sizeof(err)), WEFT_EINVAL);
        assert_non_null(strstr(err, "OTEL_PROPAGATORS:"));
    }
    otel_clear();
}

/* ---- bounds, failures, shutdown ---- */

static void test_queue_full(void **state)
{
    receiver_start(true);
    /* batches never fill and the flush interval is long: nothing leaves before shutdown */
    weft_span_exporter_t *e = new_exporter(rcv.port, 4, 100, 600000, 5000);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 10);
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.dropped_queue_full, 6);
    assert_int_equal(weft_tracer_dropped(t), 6);
    assert_int_equal(s.exported + s.batches_sent + s.batches_failed, 0);
    uint64_t t0 = ms_now();
    weft_tracer_free(t); /* sends the four queued spans */
    assert_true(ms_now() - t0 < 2000);
    assert_int_equal(received_spans(), 4);
    receiver_stop();
}

static void test_non_2xx(void **state)
{
    /* 400 is not a transient failure: the batch is dropped after one request */
    receiver_start(true);
    atomic_store(&rcv.status, 400);
    weft_span_exporter_t *e = new_retrying_exporter(rcv.port, 5, 5000);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 2);
    assert_true(wait_for(have_failed_batch, e, 5000));
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.batches_failed, 1);
    assert_int_equal(s.dropped_failed, 2);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.exported, 0);
    usleep(150000); /* three backoffs: no retry comes */
    assert_int_equal(atomic_load(&rcv.requests), 1);
    /* the receiver recovers: the next batch goes through */
    atomic_store(&rcv.status, 200);
    end_spans(t, 1);
    assert_true(wait_for(have_exported, &(want_exported_t){e, 1}, 5000));
    s = stats(e);
    assert_int_equal(s.exported, 1);
    assert_int_equal(s.batches_sent, 1);
    assert_int_equal(s.batches_failed, 1);
    weft_tracer_free(t);
    assert_int_equal(received_spans(), 3);
    receiver_stop();
}

/* The same bytes every time: a retry resends the batch, it does not re-encode it. */
static void assert_bodies_equal(int n)
{
    pthread_mutex_lock(&rcv.mu);
    assert_int_equal(rcv.nbodies, n);
    for (int i = 1; i < n; i++) assert_string_equal(rcv.bodies[i], rcv.bodies[0]);
    pthread_mutex_unlock(&rcv.mu);
}

static void test_retry_transient(void **state)
{
    /* 503, 429, 502 and 504 are retried, with the same body, until one is accepted */
    static const int statuses[] = {503, 429, 502, 504};
    for (size_t i = 0; i < 4; i++) {
        receiver_start_failing(statuses[i], 2, NULL);
        weft_span_exporter_t *e = new_retrying_exporter(rcv.port, 3, 5000);
        weft_tracer_t *t = new_tracer(e);
        end_spans(t, 4);
        if (!wait_for(have_exported, &(want_exported_t){e, 4}, 5000))
            fail_msg("status %d: the batch was not retried to success", statuses[i]);
        weft_otlp_stats_t s = stats(e);
        assert_int_equal(s.retries, 2);
        assert_int_equal(s.batches_sent, 1);
        assert_int_equal(s.batches_failed + s.dropped_failed, 0);
        assert_bodies_equal(3);
        weft_tracer_free(t);
        receiver_stop();
    }

    /* out of attempts: max_attempts requests, then the batch is dropped; the next batch
     * starts its own count */
    receiver_start_failing(503, 3, NULL);
    weft_span_exporter_t *e = new_retrying_exporter(rcv.port, 3, 5000);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 2);
    assert_true(wait_for(have_failed_batch, e, 5000));
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.retries, 2);
    assert_int_equal(s.batches_failed, 1);
    assert_int_equal(s.dropped_failed, 2);
    assert_int_equal(atomic_load(&rcv.requests), 3);
    end_spans(t, 1);
    assert_true(wait_for(have_exported, &(want_exported_t){e, 1}, 5000));
    weft_tracer_free(t);
    receiver_stop();
}

static void test_retry_after(void **state)
{
    /* Retry-After in seconds is waited for, instead of the backoff */
    receiver_start_failing(429, 1, "1");
    weft_otlp_options_t o;
    test_options_for(&o, rcv.port, 2048, 512, 10, 5000);
    o.retry_initial_backoff_ms = 10;
    o.retry_max_backoff_ms = 3000;
    weft_span_exporter_t *e = exporter_from(&o);
    weft_tracer_t *t = new_tracer(e);
    uint64_t t0 = ms_now();
    end_spans(t, 1);
    assert_true(wait_for(have_exported, &(want_exported_t){e, 1}, 5000));
    uint64_t took = ms_now() - t0;
    if (took < 950)
        fail_msg("retried after %llu ms, not after Retry-After: 1", (unsigned long long)took);
    assert_int_equal(stats(e).retries, 1);
    weft_tracer_free(t);
    receiver_stop();

    /* a Retry-After longer than retry_max_backoff_ms ends the batch's retries at once */
    receiver_start_failing(503, 1, "Fri, 31 Dec 2100 23:59:59 GMT");
    o.port = rcv.port;
    e = exporter_from(&o);
    t = new_tracer(e);
    end_spans(t, 3);
    assert_true(wait_for(have_failed_batch, e, 5000));
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.retries, 0);
    assert_int_equal(s.dropped_failed, 3);
    assert_int_equal(atomic_load(&rcv.requests), 1);
    weft_tracer_free(t);
    receiver_stop();

    /* one that is not understood is ignored: the backoff applies */
    receiver_start_failing(503, 1, "soon");
    o.port = rcv.port;
    e = exporter_from(&o);
    t = new_tracer(e);
    t0 = ms_now();
    end_spans(t, 1);
    assert_true(wait_for(have_exported, &(want_exported_t){e, 1}, 5000));
    took = ms_now() - t0;
    if (took >= 900)
        fail_msg("retried after %llu ms, not after the 10 ms backoff", (unsigned long long)took);
    assert_int_equal(stats(e).retries, 1);
    weft_tracer_free(t);
    receiver_stop();
}

static void test_receiver_down(void **state)
{
    uint16_t port = closed_port();
    weft_span_exporter_t *e = new_retrying_exporter(port, 3, 500);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 3);
    assert_true(wait_for(have_failed_batch, e, 5000));
    weft_otlp_stats_t s = stats(e);
    assert_int_equal(s.dropped_failed, 3);
    assert_int_equal(s.retries, 2); /* refused three times */
    assert_int_equal(s.exported + s.batches_sent, 0);

    /* the receiver comes up while a batch is being retried: nothing is lost */
    end_spans(t, 4);
    assert_true(wait_for(have_retries, &(want_exported_t){e, s.retries + 1}, 5000));
    receiver_start_with(true, port, 0, 0, NULL);
    assert_true(wait_for(have_exported, &(want_exported_t){e, 4}, 5000));
    s = stats(e);
    assert_int_equal(s.dropped_failed, 3);
    assert_int_equal(received_spans(), 4);
    receiver_stop();

    /* more spans, then shutdown at once: a refused connection is not retried while shutting
     * down, so they fail well within the timeout */
    end_spans(t, 5);
    uint64_t t0 = ms_now();
    weft_tracer_free(t);
    uint64_t took = ms_now() - t0;
    if (took >= 500) fail_msg("shutdown took %llu ms", (unsigned long long)took);
}

static void test_retry_at_shutdown(void **state)
{
    /* shutting down: a 503 is retried while the wait fits before the deadline (nothing is
     * sent before shutdown, which sends the three spans as one batch) */
    receiver_start_failing(503, 2, NULL);
    weft_otlp_options_t o;
    test_options_for(&o, rcv.port, 2048, 512, 600000, 2000);
    o.retry_initial_backoff_ms = 20;
    o.retry_max_backoff_ms = 50;
    weft_span_exporter_t *e = exporter_from(&o);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 3);
    weft_tracer_free(t);
    assert_int_equal(received_spans(), 9); /* three requests of the same three spans */
    receiver_stop();

    /* a Retry-After beyond the deadline: dropped at once, shutdown does not wait for it */
    receiver_start_failing(503, 1, "2");
    test_options_for(&o, rcv.port, 2048, 512, 600000, 1000);
    o.retry_max_backoff_ms = 5000;
    e = exporter_from(&o);
    t = new_tracer(e);
    end_spans(t, 2);
    uint64_t t0 = ms_now();
    weft_tracer_free(t);
    uint64_t took = ms_now() - t0;
    if (took >= 500) fail_msg("shutdown took %llu ms", (unsigned long long)took);
    assert_int_equal(atomic_load(&rcv.requests), 1);
    receiver_stop();

    /* a batch already waiting for a retry due after the deadline is dropped when shutdown
     * begins */
    receiver_start_failing(503, 1, "3");
    test_options_for(&o, rcv.port, 2048, 512, 10, 1000);
    e = exporter_from(&o);
    t = new_tracer(e);
    end_spans(t, 2);
    assert_true(wait_for(have_retries, &(want_exported_t){e, 1}, 5000));
    t0 = ms_now();
    weft_tracer_free(t);
    took = ms_now() - t0;
    if (took >= 500) fail_msg("shutdown took %llu ms", (unsigned long long)took);
    assert_int_equal(atomic_load(&rcv.requests), 1);
    receiver_stop();
}

static void test_receiver_never_answers(void **state)
{
    receiver_start(false); /* connections complete in the kernel's backlog; nothing answers */
    weft_span_exporter_t *e = new_exporter(rcv.port, 2048, 512, 10, 300);
    weft_tracer_t *t = new_tracer(e);
    end_spans(t, 2);
    usleep(100000); /* the batch is in flight, waiting for an answer */
    end_spans(t, 2);
    uint64_t t0 = ms_now();
    weft_tracer_free(t); /* waits 300 ms, then cancels */
    uint64_t took = ms_now() - t0;
    if (took < 250 || took > 300 + 400) fail_msg("shutdown took %llu ms", (unsigned long long)took);
    receiver_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),           cmocka_unit_test(test_json),
        cmocka_unit_test(test_resource),          cmocka_unit_test(test_headers),
        cmocka_unit_test(test_edge_values),       cmocka_unit_test(test_env),
        cmocka_unit_test(test_queue_full),        cmocka_unit_test(test_non_2xx),
        cmocka_unit_test(test_receiver_down),     cmocka_unit_test(test_receiver_never_answers),
        cmocka_unit_test(test_retry_transient),   cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_at_shutdown), cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_protobuf),          cmocka_unit_test(test_protobuf_edge_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
