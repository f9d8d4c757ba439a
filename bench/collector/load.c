/*
 * bench/collector/load.c - the load generator and query client of bench/collector/bench:
 * spans sent to a collector (OTLP/HTTP protobuf or JSON, Zipkin v2 JSON) over N keep-alive
 * connections, and trace-by-id and search queries timed one at a time.
 *
 *   collector_load ingest --port P --format otlp-proto|otlp-json|zipkin [--host 127.0.0.1]
 *       [--conns 16] [--batch 100] [--warmup 2] [--duration 5] [--spans N] [--ids FILE]
 *       [--ids-max 100000] [--templates 256] [--seed S] [--server-pid PID]
 *       [--timeout 10] [--retry-max-ms 1000] [--sent FILE]
 *   collector_load query --port P --kind trace|search --ids FILE [--count 2000]
 *       [--warmup 10] [--min-duration 100ms] [--limit 20] [--trace-spans 10] [--seed S]
 *       [--times FILE] [--server-pid PID]
 *
 * What is sent. Bodies are made before the run from a model of realistic traffic: 20
 * services (resource: service.name, service.version, service.namespace, host.name,
 * deployment.environment.name, telemetry.sdk.name/language/version), traces of 10 spans
 * (a SERVER root, calls to other services as a CLIENT span in the caller and a SERVER span
 * in the callee, database calls as CLIENT spans), ~10 attributes a span (http.request.method,
 * http.route, url.path, http.response.status_code, server.address, server.port,
 * network.peer.address, user_agent.original, ...; db.* on database calls), an "exception"
 * event on failed spans and a few others, names from a small set of operations, durations
 * drawn log-normally between 1 ms and 2 s (the largest of a trace at its root, each child
 * inside its parent). A body holds --batch spans (10 traces for 100), grouped by service
 * into ResourceSpans for OTLP, a flat array for Zipkin. --templates such bodies are made,
 * each with the positions of what changes per request recorded; a request is a template
 * picked at random, copied, and patched: fresh trace and span ids (parent ids follow),
 * start, end and event times moved to now (all spans end before now, starting up to 3 s
 * earlier), and an 8-digit number in each url.path / url.full drawn anew. Ids come from
 * counters through a bijective mix (splitmix64's finaliser) keyed by the seed, so no two
 * spans of a run share an id and every id looks random; a run's seed is random unless
 * --seed gives one.
 *
 * ingest keeps --conns connections busy, one request in flight on each. A 2xx answer
 * acknowledges the batch's spans, less any the answer reports rejected (OTLP's
 * partial_success); a 429 is counted and the same body sent again on that connection
 * after Retry-After seconds (capped by --retry-max-ms; 100 ms when absent); anything else
 * is an error (counted, the first few printed; 100 errors end the run). With --spans N it
 * sends N spans (rounded up to whole batches) as fast as they are taken and stops when
 * all are acknowledged (a fill); otherwise it runs --warmup seconds, then counts for
 * --duration seconds the answers that arrive in that window, then stops sending and waits
 * for the requests in flight. It prints one line
 *   result mode=ingest format=F seconds=S spans=N spans_per_s=R requests=Q r429=K
 *          errors=E rejected=J p50_ms=A p99_ms=B load_cpu_s=C server_cpu_s=D server_wait_s=W
 * (server_cpu_s: utime+stime of --server-pid over the window, from /proc; server_wait_s:
 * the time its threads waited on a run queue, runnable but not running, from schedstat;
 * -1 without --server-pid),
 * and writes to --ids a sample (reservoir, at most --ids-max) of the acknowledged trace
 * ids, one 32-digit hex id a line. --sent FILE appends "format traces spans" for each
 * acknowledged batch (for load_check.py, which checks the accounting).
 *
 * query sends, one at a time on one keep-alive connection, --count queries (after --warmup
 * more that are not counted) to the Jaeger query API: trace (GET /api/traces/{id} for ids
 * drawn at random from --ids; the answer must be 200, name the trace and hold
 * --trace-spans spans, counted by their "operationName") or search (GET
 * /api/traces?service=S&minDuration=D&limit=L for a service drawn at random; the answer
 * must be 200; the traces it holds are counted by their "processes"). Each query is timed
 * with CLOCK_MONOTONIC from the first byte written to the last byte read. It prints
 *   result mode=query kind=K queries=N p50_ms=A p90_ms=B p99_ms=C max_ms=D mean_ms=E
 *          failed=F empty=G traces_mean=H server_cpu_s=C server_wait_s=W
 * (the server's CPU and run-queue wait over the counted queries, with --server-pid) and
 * with --times the latencies (ms, one a line). Exit status 0; 1 when a request failed
 * (an error, a rejected span, a wrong answer) or the run could not be made; 2 for a bad
 * option.
 *
 * One thread, epoll, non-blocking sockets; every wait is bounded (--timeout seconds per
 * request, 30 s for the requests in flight at the end).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TRACE_SPANS 10   /* spans of every trace */
#define NSVC 20          /* services */
#define MAX_ATTRS 12     /* per span in the model */
#define MAX_BODY (64u << 20) /* the largest answer read */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("collector_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void bad_option(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("collector_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a whole process in seconds (/proc/PID/stat fields 14 and 15), or -1. */
static double cpu_pid_s(long pid)
{
    if (pid <= 0) return -1;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
       utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Seconds the threads of a process have waited on a run queue, runnable but not running
 * (the second field of each /proc/PID/task/TID/schedstat), or -1. Threads that ended are
 * not counted. */
static double wait_pid_s(long pid)
{
    if (pid <= 0) return -1;
    char path[96];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d) return -1;
    unsigned long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p2[128];
        snprintf(p2, sizeof p2, "/proc/%ld/task/%.20s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (!f) continue;
        unsigned long long run = 0, wait = 0;
        if (fscanf(f, "%llu %llu", &run, &wait) == 2) sum += wait;
        fclose(f);
    }
    closedir(d);
    return (double)sum / 1e9;
}

/* ---- random numbers and ids ---------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static double rnd_unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static uint64_t rnd_below(uint64_t n) { return rnd() % n; }

/* splitmix64's finaliser: a bijection of 64-bit words, so distinct counters give distinct
 * ids. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t seed_a, seed_b, seed_c;

static void trace_id(uint64_t n, uint8_t out[16])
{
    uint64_t hi = mix64(n ^ seed_a), lo = mix64(n ^ seed_b);
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(hi >> (56 - 8 * i));
    for (int i = 0; i < 8; i++) out[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
}

static uint64_t span_id(uint64_t n)
{
    uint64_t v = mix64(n ^ seed_c);
    return v ? v : 1; /* one counter in 2^64 maps to 0, which no span may have */
}

/* ---- a growable buffer that remembers what is patched per request --------------------- */

enum { FIX_TRACE, FIX_SPAN, FIX_PARENT, FIX_TIME, FIX_DIGITS };
enum { ENC_BIN, ENC_HEX, ENC_DEC };

typedef struct fix_s {
    uint32_t off;   /* in the body */
    uint8_t type;   /* FIX_* */
    uint8_t enc;    /* ENC_*: bytes (protobuf), lowercase hex, decimal digits */
    uint8_t width;  /* ENC_DEC: the digits written */
    uint8_t div_us; /* FIX_TIME, ENC_DEC: in microseconds (Zipkin), not nanoseconds */
    uint32_t span;  /* the span's index in the batch (FIX_TRACE, FIX_SPAN, FIX_PARENT: whose
                       id; FIX_PARENT: the parent's index) */
    uint64_t rel;   /* FIX_TIME: ns after the request's base time */
} fix_t;

typedef struct buf_s {
    uint8_t *p;
    size_t n, cap;
    fix_t *f;
    size_t nf, capf;
} buf_t;

static void b_reserve(buf_t *b, size_t more)
{
    if (b->n + more <= b->cap) return;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->n + more) c *= 2;
    b->p = xrealloc(b->p, c);
    b->cap = c;
}
static void b_put(buf_t *b, const void *s, size_t n)
{
    b_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void b_puts(buf_t *b, const char *s) { b_put(b, s, strlen(s)); }
static void b_putc(buf_t *b, char c) { b_put(b, &c, 1); }
static void b_printf(buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) die("b_printf: too long");
    b_put(b, tmp, (size_t)n);
}
static void b_fix(buf_t *b, fix_t f)
{
    if (b->nf == b->capf) {
        b->capf = b->capf ? b->capf * 2 : 64;
        b->f = xrealloc(b->f, b->capf * sizeof *b->f);
    }
    b->f[b->nf++] = f;
}
/* Adds a fix at the current end and reserves its room (filled with placeholder bytes). */
static void b_hole(buf_t *b, fix_t f, size_t len, char fill)
{
    f.off = (uint32_t)b->n;
    b_fix(b, f);
    b_reserve(b, len);
    memset(b->p + b->n, fill, len);
    b->n += len;
}
static void b_free(buf_t *b)
{
    free(b->p);
    free(b->f);
    memset(b, 0, sizeof *b);
}

/* ---- the model: what a batch of spans says, before it is encoded ----------------------- */

typedef struct mattr_s {
    const char *key;
    bool is_int;
    int64_t i;
    char s[200];
    int digits_at; /* >= 0: an 8-digit number at this offset in s, drawn anew per request */
} mattr_t;

typedef struct mspan_s {
    int trace, idx, parent; /* trace in the batch, index in the trace, parent's index or -1 */
    int svc, remote_svc;    /* remote_svc: the callee of a CLIENT span, -1 */
    int kind;               /* OTLP: 1 internal, 2 server, 3 client */
    char name[96];
    uint64_t rel_start, dur; /* ns: start after the batch's base time, duration */
    int status;              /* 0 unset, 2 error */
    char status_msg[64];
    mattr_t attrs[MAX_ATTRS];
    int nattrs;
    bool has_event;
    uint64_t ev_rel; /* after the span's start */
    char ev_name[32];
    mattr_t ev_attrs[2];
    int nev_attrs;
    char local_ip[16], remote_ip[16], remote_name[32];
    int local_port, remote_port;
} mspan_t;

static const char *svc_names[NSVC] = {
    "frontend", "api-gateway", "cart", "checkout", "payment", "shipping", "currency",
    "email", "recommendation", "product-catalog", "ad", "quote", "fraud-detection",
    "accounting", "inventory", "user", "auth", "search", "review", "notification"};
static const char *svc_lang[NSVC] = {
    "nodejs", "go", "dotnet", "go", "nodejs", "rust", "cpp", "ruby", "python", "go",
    "java", "php", "java", "dotnet", "go", "java", "go", "python", "python", "java"};
static char svc_version[NSVC][16], svc_host[NSVC][64], svc_ip[NSVC][16];

typedef struct route_s {
    const char *method, *route, *path; /* path: with "########" where the number goes */
} route_t;
static const route_t routes[] = {
    {"GET", "/api/products/{id}", "/api/products/########"},
    {"GET", "/api/products", "/api/products"},
    {"GET", "/api/cart", "/api/cart"},
    {"POST", "/api/cart/items", "/api/cart/items"},
    {"POST", "/api/checkout", "/api/checkout"},
    {"GET", "/api/orders/{id}", "/api/orders/########"},
    {"GET", "/api/recommendations", "/api/recommendations"},
    {"GET", "/api/users/{id}", "/api/users/########"},
    {"POST", "/api/payments", "/api/payments"},
    {"GET", "/api/search", "/api/search"},
    {"GET", "/api/reviews/{id}", "/api/reviews/########"},
    {"PUT", "/api/users/{id}/address", "/api/users/########/address"},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static const char *user_agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
};
#define NUAS (sizeof user_agents / sizeof user_agents[0])

typedef struct dbq_s {
    const char *system, *op, *table, *text;
} dbq_t;
static const dbq_t dbqs[] = {
    {"postgresql", "SELECT", "products", "SELECT id, name, price, currency FROM products WHERE id = $1"},
    {"postgresql", "SELECT", "orders", "SELECT * FROM orders WHERE user_id = $1 ORDER BY created_at DESC LIMIT 20"},
    {"postgresql", "INSERT", "order_items", "INSERT INTO order_items (order_id, product_id, quantity) VALUES ($1, $2, $3)"},
    {"redis", "GET", "cart", "GET cart:########"},
    {"redis", "HGETALL", "session", "HGETALL session:########"},
    {"mongodb", "find", "reviews", "{\"find\":\"reviews\",\"filter\":{\"product_id\":\"?\"}}"},
};
#define NDBQS (sizeof dbqs / sizeof dbqs[0])

static void setup_services(void)
{
    for (int i = 0; i < NSVC; i++) {
        snprintf(svc_version[i], sizeof svc_version[i], "1.%d.%d", (i * 7) % 13, (i * 5) % 9);
        snprintf(svc_host[i], sizeof svc_host[i], "%s-%x%x-%c%c%d%c%d", svc_names[i],
                 (unsigned)(0x5d6f + i * 911), (unsigned)(0xa1 + i), 'a' + i % 26,
                 'k' + i % 13, i % 10, 'q' + i % 9, (i * 3) % 10);
        snprintf(svc_ip[i], sizeof svc_ip[i], "10.0.%d.%d", 1 + i / 8, 10 + (i * 37) % 240);
    }
}

static mattr_t *add_str(mspan_t *s, const char *key, const char *val)
{
    if (s->nattrs == MAX_ATTRS) die("model: too many attributes");
    mattr_t *a = &s->attrs[s->nattrs++];
    memset(a, 0, sizeof *a);
    a->key = key;
    snprintf(a->s, sizeof a->s, "%s", val);
    const char *h = strstr(a->s, "########");
    a->digits_at = h ? (int)(h - a->s) : -1;
    return a;
}
static void add_int(mspan_t *s, const char *key, int64_t v)
{
    if (s->nattrs == MAX_ATTRS) die("model: too many attributes");
    mattr_t *a = &s->attrs[s->nattrs++];
    memset(a, 0, sizeof *a);
    a->key = key;
    a->is_int = true;
    a->i = v;
    a->digits_at = -1;
}

/* log-normal between 1 ms and 2 s: ln 1 ms and ln 2 s three standard deviations either
 * side of the mean (median about 45 ms; about a quarter of the draws 100 ms or more). */
static uint64_t draw_duration(void)
{
    const double lo = log(1e-3), hi = log(2.0);
    const double mu = (lo + hi) / 2, sigma = (hi - lo) / 6;
    double u1 = rnd_unit(), u2 = rnd_unit();
    if (u1 < 1e-12) u1 = 1e-12;
    double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
    double d = exp(mu + sigma * z);
    if (d < 1e-3) d = 1e-3;
    if (d > 2.0) d = 2.0;
    return (uint64_t)(d * 1e6) * 1000; /* whole microseconds: see make_trace */
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void random_ip(char *out, size_t n)
{
    snprintf(out, n, "10.%d.%d.%d", (int)rnd_below(4), (int)rnd_below(256), 1 + (int)rnd_below(254));
}

static void server_attrs(mspan_t *s, const route_t *r, int status)
{
    add_str(s, "http.request.method", r->method);
    add_str(s, "http.route", r->route);
    add_str(s, "url.path", r->path);
    add_str(s, "url.scheme", "http");
    add_int(s, "http.response.status_code", status);
    add_str(s, "server.address", svc_names[s->svc]);
    add_int(s, "server.port", 8080);
    char ip[16];
    random_ip(ip, sizeof ip);
    add_str(s, "network.peer.address", ip);
    add_str(s, "network.protocol.version", "1.1");
    add_str(s, "user_agent.original", user_agents[rnd_below(NUAS)]);
}

static void client_attrs(mspan_t *s, const route_t *r, int status)
{
    char url[200];
    add_str(s, "http.request.method", r->method);
    snprintf(url, sizeof url, "http://%s:8080%s", svc_names[s->remote_svc], r->path);
    add_str(s, "url.full", url);
    add_str(s, "server.address", svc_names[s->remote_svc]);
    add_int(s, "server.port", 8080);
    add_int(s, "http.response.status_code", status);
    add_str(s, "network.peer.address", svc_ip[s->remote_svc]);
    add_int(s, "network.peer.port", 8080);
    add_str(s, "network.protocol.version", "1.1");
    add_str(s, "peer.service", svc_names[s->remote_svc]);
}

static void db_attrs(mspan_t *s, const dbq_t *q)
{
    char addr[64];
    add_str(s, "db.system", q->system);
    add_str(s, "db.namespace", "shop");
    add_str(s, "db.operation.name", q->op);
    add_str(s, "db.collection.name", q->table);
    add_str(s, "db.query.text", q->text);
    snprintf(addr, sizeof addr, "%s-0.%s.svc.cluster.local", q->system, q->system);
    add_str(s, "server.address", addr);
    add_int(s, "server.port", strcmp(q->system, "redis") == 0 ? 6379 : strcmp(q->system, "mongodb") == 0 ? 27017 : 5432);
    add_str(s, "network.peer.address", "10.3.0.21");
}

static void add_event(mspan_t *s, const char *name, const char *k1, const char *v1,
                      const char *k2, const char *v2)
{
    s->has_event = true;
    s->ev_rel = s->dur / 2000 * 1000;
    snprintf(s->ev_name, sizeof s->ev_name, "%s", name);
    s->nev_attrs = 0;
    mattr_t *a = &s->ev_attrs[s->nev_attrs++];
    memset(a, 0, sizeof *a);
    a->key = k1;
    snprintf(a->s, sizeof a->s, "%s", v1);
    a->digits_at = -1;
    if (k2) {
        a = &s->ev_attrs[s->nev_attrs++];
        memset(a, 0, sizeof *a);
        a->key = k2;
        snprintf(a->s, sizeof a->s, "%s", v2);
        a->digits_at = -1;
    }
}

/* One trace of TRACE_SPANS spans into out[], trace number t of the batch, starting at
 * rel_start. Times and durations are whole microseconds, so that Zipkin's (in
 * microseconds) keep every child inside its parent exactly as OTLP's do. */
static void make_trace(mspan_t *out, int t, uint64_t rel_start)
{
    uint64_t durs[TRACE_SPANS];
    for (int i = 0; i < TRACE_SPANS; i++) durs[i] = draw_duration();
    qsort(durs, TRACE_SPANS, sizeof durs[0], cmp_u64_desc);

    /* Most traces enter at the edge; some at other services (jobs, internal callers). */
    int root_svc = rnd_below(10) < 7 ? (int)rnd_below(2) : 2 + (int)rnd_below(NSVC - 2);
    int n = 0;
    for (int i = 0; i < TRACE_SPANS; i++) memset(&out[i], 0, sizeof out[i]);
    mspan_t *root = &out[n++];
    root->parent = -1;
    root->svc = root_svc;
    root->kind = 2;
    root->remote_svc = -1;
    while (n < TRACE_SPANS) {
        /* a caller: the root or a SERVER span already made */
        int caller;
        do caller = (int)rnd_below((uint64_t)n);
        while (out[caller].kind != 2);
        int left = TRACE_SPANS - n;
        if (left >= 2 && rnd_below(10) < 7) { /* a call to another service */
            int callee;
            do callee = (int)rnd_below(NSVC);
            while (callee == out[caller].svc || callee < 2);
            mspan_t *c = &out[n];
            c->parent = caller;
            c->svc = out[caller].svc;
            c->remote_svc = callee;
            c->kind = 3;
            n++;
            mspan_t *sv = &out[n];
            sv->parent = n - 1;
            sv->svc = callee;
            sv->remote_svc = -1;
            sv->kind = 2;
            n++;
        } else { /* a database call */
            mspan_t *d = &out[n];
            d->parent = caller;
            d->svc = out[caller].svc;
            d->remote_svc = -1;
            d->kind = 3;
            d->name[0] = 'd'; /* marks a database call until it is named below */
            n++;
        }
    }
    /* Durations: the largest first, each span inside its parent; attributes and names. */
    for (int i = 0; i < TRACE_SPANS; i++) {
        mspan_t *s = &out[i];
        s->trace = t;
        s->idx = i;
        s->dur = durs[i];
        if (s->parent < 0) {
            s->rel_start = rel_start;
        } else {
            const mspan_t *p = &out[s->parent];
            if (s->dur > p->dur) s->dur = p->dur; /* sorted, so only equal ones */
            uint64_t room = (p->dur - s->dur) / 1000;
            s->rel_start = p->rel_start + 1000 * rnd_below(room + 1);
        }
        snprintf(s->local_ip, sizeof s->local_ip, "%s", svc_ip[s->svc]);
        s->local_port = 8080;
        int status = 200;
        uint64_t r = rnd_below(1000);
        if (r < 30) status = 500;
        else if (r < 60) status = 404;
        else if (r < 70) status = 201;
        if (s->name[0] == 'd') { /* database call */
            const dbq_t *q = &dbqs[rnd_below(NDBQS)];
            snprintf(s->name, sizeof s->name, "%s shop.%s", q->op, q->table);
            db_attrs(s, q);
            snprintf(s->remote_ip, sizeof s->remote_ip, "10.3.0.21");
            snprintf(s->remote_name, sizeof s->remote_name, "%s", q->system);
            s->remote_port = 5432;
            if (rnd_below(100) < 2) {
                s->status = 2;
                snprintf(s->status_msg, sizeof s->status_msg, "connection reset by peer");
                add_event(s, "exception", "exception.type", "IOError", "exception.message",
                          "connection reset by peer");
            }
            continue;
        }
        const route_t *rt = &routes[rnd_below(NROUTES)];
        if (s->kind == 2) {
            snprintf(s->name, sizeof s->name, "%s %s", rt->method, rt->route);
            server_attrs(s, rt, status);
        } else {
            snprintf(s->name, sizeof s->name, "%s", rt->method);
            client_attrs(s, rt, status);
            snprintf(s->remote_ip, sizeof s->remote_ip, "%s", svc_ip[s->remote_svc]);
            snprintf(s->remote_name, sizeof s->remote_name, "%s", svc_names[s->remote_svc]);
            s->remote_port = 8080;
        }
        if (status >= 500) {
            s->status = 2;
            snprintf(s->status_msg, sizeof s->status_msg, "HTTP %d", status);
            add_event(s, "exception", "exception.type", "InternalServerError",
                      "exception.message", "upstream request failed: 500 Internal Server Error");
        } else if (rnd_below(100) < 3) { /* a few other spans log something */
            add_event(s, "cache miss", "cache.key", "product:########", NULL, NULL);
            s->ev_attrs[0].digits_at = 8;
        }
    }
}

/* ---- encoders: the model into a body with its patch points ------------------------------ */

/* protobuf */
static void pb_varint(buf_t *b, uint64_t v)
{
    uint8_t t[10];
    int n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    b_put(b, t, (size_t)n);
}
static void pb_tag(buf_t *b, int field, int wire) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }
static void pb_bytes(buf_t *b, int field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    b_put(b, p, n);
}
/* A string whose 8-digit number (at digits_at, if >= 0) is patched per request. */
static void pb_str_digits(buf_t *b, int field, const char *s, int digits_at)
{
    size_t n = strlen(s);
    pb_tag(b, field, 2);
    pb_varint(b, n);
    size_t at = b->n;
    b_put(b, s, n);
    if (digits_at >= 0) b_fix(b, (fix_t){.off = (uint32_t)(at + (size_t)digits_at), .type = FIX_DIGITS});
}
static void pb_str(buf_t *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
/* child into b as field (length-delimited); its patch points move with it; child freed */
static void pb_embed(buf_t *b, int field, buf_t *child)
{
    pb_tag(b, field, 2);
    pb_varint(b, child->n);
    size_t base = b->n;
    b_put(b, child->p, child->n);
    for (size_t i = 0; i < child->nf; i++) {
        fix_t f = child->f[i];
        f.off += (uint32_t)base;
        b_fix(b, f);
    }
    b_free(child);
}
static void pb_kv(buf_t *b, int field, const mattr_t *a)
{
    buf_t kv = {0}, v = {0};
    pb_str(&kv, 1, a->key);
    if (a->is_int) {
        pb_tag(&v, 3, 0);
        pb_varint(&v, (uint64_t)a->i);
    } else {
        pb_str_digits(&v, 1, a->s, a->digits_at);
    }
    pb_embed(&kv, 2, &v);
    pb_embed(b, field, &kv);
}
static void pb_kv_str(buf_t *b, int field, const char *k, const char *v)
{
    buf_t kv = {0}, val = {0};
    pb_str(&kv, 1, k);
    pb_str(&val, 1, v);
    pb_embed(&kv, 2, &val);
    pb_embed(b, field, &kv);
}
static void pb_fixed64_hole(buf_t *b, int field, uint64_t rel)
{
    pb_tag(b, field, 1);
    b_hole(b, (fix_t){.type = FIX_TIME, .enc = ENC_BIN, .rel = rel}, 8, 0);
}
static void pb_id_hole(buf_t *b, int field, int type, uint32_t span, size_t len)
{
    pb_tag(b, field, 2);
    pb_varint(b, len);
    b_hole(b, (fix_t){.type = (uint8_t)type, .enc = ENC_BIN, .span = span}, len, 0);
}

static void pb_resource(buf_t *b, int svc)
{
    buf_t r = {0};
    pb_kv_str(&r, 1, "service.name", svc_names[svc]);
    pb_kv_str(&r, 1, "service.version", svc_version[svc]);
    pb_kv_str(&r, 1, "service.namespace", "shop");
    pb_kv_str(&r, 1, "host.name", svc_host[svc]);
    pb_kv_str(&r, 1, "deployment.environment.name", "production");
    pb_kv_str(&r, 1, "telemetry.sdk.name", "opentelemetry");
    pb_kv_str(&r, 1, "telemetry.sdk.language", svc_lang[svc]);
    pb_kv_str(&r, 1, "telemetry.sdk.version", "1.28.0");
    pb_embed(b, 1, &r);
}

static void pb_span(buf_t *b, const mspan_t *s, uint32_t at, uint32_t trace_first)
{
    buf_t p = {0};
    pb_id_hole(&p, 1, FIX_TRACE, at, 16);
    pb_id_hole(&p, 2, FIX_SPAN, at, 8);
    if (s->parent >= 0) pb_id_hole(&p, 4, FIX_PARENT, trace_first + (uint32_t)s->parent, 8);
    pb_str(&p, 5, s->name);
    pb_tag(&p, 6, 0);
    pb_varint(&p, (uint64_t)s->kind);
    pb_fixed64_hole(&p, 7, s->rel_start);
    pb_fixed64_hole(&p, 8, s->rel_start + s->dur);
    for (int i = 0; i < s->nattrs; i++) pb_kv(&p, 9, &s->attrs[i]);
    if (s->has_event) {
        buf_t e = {0};
        pb_fixed64_hole(&e, 1, s->rel_start + s->ev_rel);
        pb_str(&e, 2, s->ev_name);
        for (int i = 0; i < s->nev_attrs; i++) pb_kv(&e, 3, &s->ev_attrs[i]);
        pb_embed(&p, 11, &e);
    }
    if (s->status) {
        buf_t st = {0};
        pb_str(&st, 2, s->status_msg);
        pb_tag(&st, 3, 0);
        pb_varint(&st, (uint64_t)s->status);
        pb_embed(&p, 15, &st);
    }
    pb_embed(b, 2, &p);
}

static const char *scope_name(int svc)
{
    return strcmp(svc_lang[svc], "go") == 0 ? "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
         : strcmp(svc_lang[svc], "java") == 0 ? "io.opentelemetry.tomcat-10.0"
         : strcmp(svc_lang[svc], "python") == 0 ? "opentelemetry.instrumentation.flask"
         : "@opentelemetry/instrumentation-http";
}

static void encode_otlp_proto(buf_t *b, const mspan_t *spans, int n)
{
    for (int svc = 0; svc < NSVC; svc++) {
        int count = 0;
        for (int i = 0; i < n; i++) count += spans[i].svc == svc;
        if (!count) continue;
        buf_t rs = {0}, ss = {0}, sc = {0};
        pb_resource(&rs, svc);
        pb_str(&sc, 1, scope_name(svc));
        pb_str(&sc, 2, "0.56.0");
        pb_embed(&ss, 1, &sc);
        for (int i = 0; i < n; i++)
            if (spans[i].svc == svc)
                pb_span(&ss, &spans[i], (uint32_t)i, (uint32_t)(spans[i].trace * TRACE_SPANS));
        pb_embed(&rs, 2, &ss);
        pb_embed(b, 1, &rs);
    }
}

/* JSON */
static void js_str(buf_t *b, const char *s)
{
    b_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            b_putc(b, '\\');
            b_putc(b, (char)c);
        } else if (c < 0x20) {
            b_printf(b, "\\u%04x", c);
        } else {
            b_putc(b, (char)c);
        }
    }
    b_putc(b, '"');
}
/* "s" whose 8 digits at digits_at are patched; s holds nothing that needs escaping before
 * them (checked) */
static void js_str_digits(buf_t *b, const char *s, int digits_at)
{
    if (digits_at < 0) {
        js_str(b, s);
        return;
    }
    for (int i = 0; i < digits_at; i++)
        if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20) die("model: escaped text before digits");
    b_putc(b, '"');
    b_put(b, s, (size_t)digits_at);
    b_fix(b, (fix_t){.off = (uint32_t)b->n, .type = FIX_DIGITS});
    b_put(b, s + digits_at, 8);
    size_t n = b->n;
    js_str(b, s + digits_at + 8);
    memmove(b->p + n, b->p + n + 1, b->n - n - 1); /* js_str's opening quote */
    b->n--;
}
static void js_hex_hole(buf_t *b, int type, uint32_t span, size_t bytes)
{
    b_putc(b, '"');
    b_hole(b, (fix_t){.type = (uint8_t)type, .enc = ENC_HEX, .span = span}, bytes * 2, '0');
    b_putc(b, '"');
}
static void js_time_hole(buf_t *b, uint64_t rel, int width, bool quoted, bool us)
{
    if (quoted) b_putc(b, '"');
    b_hole(b, (fix_t){.type = FIX_TIME, .enc = ENC_DEC, .width = (uint8_t)width, .div_us = us, .rel = rel},
           (size_t)width, '1');
    if (quoted) b_putc(b, '"');
}
static void js_otlp_attr(buf_t *b, const mattr_t *a)
{
    b_puts(b, "{\"key\":");
    js_str(b, a->key);
    if (a->is_int) {
        b_printf(b, ",\"value\":{\"intValue\":\"%" PRId64 "\"}}", a->i);
    } else {
        b_puts(b, ",\"value\":{\"stringValue\":");
        js_str_digits(b, a->s, a->digits_at);
        b_puts(b, "}}");
    }
}
static void js_otlp_kv(buf_t *b, const char *k, const char *v, bool comma)
{
    if (comma) b_putc(b, ',');
    b_puts(b, "{\"key\":");
    js_str(b, k);
    b_puts(b, ",\"value\":{\"stringValue\":");
    js_str(b, v);
    b_puts(b, "}}");
}

static void encode_otlp_json(buf_t *b, const mspan_t *spans, int n)
{
    bool first_rs = true;
    b_puts(b, "{\"resourceSpans\":[");
    for (int svc = 0; svc < NSVC; svc++) {
        int count = 0;
        for (int i = 0; i < n; i++) count += spans[i].svc == svc;
        if (!count) continue;
        if (!first_rs) b_putc(b, ',');
        first_rs = false;
        b_puts(b, "{\"resource\":{\"attributes\":[");
        js_otlp_kv(b, "service.name", svc_names[svc], false);
        js_otlp_kv(b, "service.version", svc_version[svc], true);
        js_otlp_kv(b, "service.namespace", "shop", true);
        js_otlp_kv(b, "host.name", svc_host[svc], true);
        js_otlp_kv(b, "deployment.environment.name", "production", true);
        js_otlp_kv(b, "telemetry.sdk.name", "opentelemetry", true);
        js_otlp_kv(b, "telemetry.sdk.language", svc_lang[svc], true);
        js_otlp_kv(b, "telemetry.sdk.version", "1.28.0", true);
        b_puts(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":");
        js_str(b, scope_name(svc));
        b_puts(b, ",\"version\":\"0.56.0\"},\"spans\":[");
        bool first = true;
        for (int i = 0; i < n; i++) {
            const mspan_t *s = &spans[i];
            if (s->svc != svc) continue;
            if (!first) b_putc(b, ',');
            first = false;
            uint32_t tf = (uint32_t)(s->trace * TRACE_SPANS);
            b_puts(b, "{\"traceId\":");
            js_hex_hole(b, FIX_TRACE, (uint32_t)i, 16);
            b_puts(b, ",\"spanId\":");
            js_hex_hole(b, FIX_SPAN, (uint32_t)i, 8);
            if (s->parent >= 0) {
                b_puts(b, ",\"parentSpanId\":");
                js_hex_hole(b, FIX_PARENT, tf + (uint32_t)s->parent, 8);
            }
            b_puts(b, ",\"name\":");
            js_str(b, s->name);
            b_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":", s->kind);
            js_time_hole(b, s->rel_start, 19, true, false);
            b_puts(b, ",\"endTimeUnixNano\":");
            js_time_hole(b, s->rel_start + s->dur, 19, true, false);
            b_puts(b, ",\"attributes\":[");
            for (int k = 0; k < s->nattrs; k++) {
                if (k) b_putc(b, ',');
                js_otlp_attr(b, &s->attrs[k]);
            }
            b_putc(b, ']');
            if (s->has_event) {
                b_puts(b, ",\"events\":[{\"timeUnixNano\":");
                js_time_hole(b, s->rel_start + s->ev_rel, 19, true, false);
                b_puts(b, ",\"name\":");
                js_str(b, s->ev_name);
                b_puts(b, ",\"attributes\":[");
                for (int k = 0; k < s->nev_attrs; k++) {
                    if (k) b_putc(b, ',');
                    js_otlp_attr(b, &s->ev_attrs[k]);
                }
                b_puts(b, "]}]");
            }
            if (s->status) {
                b_printf(b, ",\"status\":{\"code\":%d,\"message\":", s->status);
                js_str(b, s->status_msg);
                b_putc(b, '}');
            }
            b_putc(b, '}');
        }
        b_puts(b, "]}]}");
    }
    b_puts(b, "]}");
}

static void zk_endpoint(buf_t *b, const char *svc, const char *ip, int port)
{
    b_puts(b, "{\"serviceName\":");
    js_str(b, svc);
    b_puts(b, ",\"ipv4\":");
    js_str(b, ip);
    b_printf(b, ",\"port\":%d}", port);
}

static void encode_zipkin(buf_t *b, const mspan_t *spans, int n)
{
    b_putc(b, '[');
    for (int i = 0; i < n; i++) {
        const mspan_t *s = &spans[i];
        uint32_t tf = (uint32_t)(s->trace * TRACE_SPANS);
        if (i) b_putc(b, ',');
        b_puts(b, "{\"traceId\":");
        js_hex_hole(b, FIX_TRACE, (uint32_t)i, 16);
        b_puts(b, ",\"id\":");
        js_hex_hole(b, FIX_SPAN, (uint32_t)i, 8);
        if (s->parent >= 0) {
            b_puts(b, ",\"parentId\":");
            js_hex_hole(b, FIX_PARENT, tf + (uint32_t)s->parent, 8);
        }
        if (s->kind == 2) b_puts(b, ",\"kind\":\"SERVER\"");
        else if (s->kind == 3) b_puts(b, ",\"kind\":\"CLIENT\"");
        b_puts(b, ",\"name\":");
        js_str(b, s->name);
        b_puts(b, ",\"timestamp\":");
        js_time_hole(b, s->rel_start, 16, false, true);
        b_printf(b, ",\"duration\":%" PRIu64 ",\"localEndpoint\":", s->dur / 1000);
        zk_endpoint(b, svc_names[s->svc], s->local_ip, s->local_port);
        if (s->kind == 3) {
            b_puts(b, ",\"remoteEndpoint\":");
            zk_endpoint(b, s->remote_name, s->remote_ip, s->remote_port);
        }
        if (s->has_event) {
            b_puts(b, ",\"annotations\":[{\"timestamp\":");
            js_time_hole(b, s->rel_start + s->ev_rel, 16, false, true);
            b_puts(b, ",\"value\":");
            js_str(b, s->ev_name);
            b_puts(b, "}]");
        }
        b_puts(b, ",\"tags\":{");
        for (int k = 0; k < s->nattrs; k++) {
            const mattr_t *a = &s->attrs[k];
            if (k) b_putc(b, ',');
            js_str(b, a->key);
            b_putc(b, ':');
            if (a->is_int) b_printf(b, "\"%" PRId64 "\"", a->i);
            else js_str_digits(b, a->s, a->digits_at);
        }
        if (s->status) {
            b_puts(b, ",\"otel.status_code\":\"ERROR\",\"error\":");
            js_str(b, s->status_msg);
        }
        b_puts(b, "}}");
    }
    b_putc(b, ']');
}

/* ---- templates and patching ---------------------------------------------------------- */

enum { F_OTLP_PROTO, F_OTLP_JSON, F_ZIPKIN };
static const char *format_names[] = {"otlp-proto", "otlp-json", "zipkin"};

typedef struct tmpl_s {
    buf_t body;
    char head[256];
    size_t head_n;
} tmpl_t;

static void make_templates(tmpl_t *ts, int nt, int format, int batch, const char *host, int port)
{
    int ntraces = batch / TRACE_SPANS;
    mspan_t *spans = xmalloc((size_t)batch * sizeof *spans);
    for (int k = 0; k < nt; k++) {
        for (int t = 0; t < ntraces; t++)
            make_trace(&spans[t * TRACE_SPANS], t, 1000 * rnd_below(1000000));
        buf_t *b = &ts[k].body;
        memset(b, 0, sizeof *b);
        switch (format) {
        case F_OTLP_PROTO: encode_otlp_proto(b, spans, batch); break;
        case F_OTLP_JSON: encode_otlp_json(b, spans, batch); break;
        default: encode_zipkin(b, spans, batch); break;
        }
        const char *path = format == F_ZIPKIN ? "/api/v2/spans" : "/v1/traces";
        const char *ctype = format == F_OTLP_PROTO ? "application/x-protobuf" : "application/json";
        int n = snprintf(ts[k].head, sizeof ts[k].head,
                         "POST %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: weft-bench-collector\r\n"
                         "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                         path, host, port, ctype, b->n);
        if (n < 0 || (size_t)n >= sizeof ts[k].head) die("request head too long");
        ts[k].head_n = (size_t)n;
    }
    free(spans);
}

static const char hexd[] = "0123456789abcdef";

static void put_hex(uint8_t *o, const uint8_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = (uint8_t)hexd[v[i] >> 4];
        o[2 * i + 1] = (uint8_t)hexd[v[i] & 15];
    }
}
static void put_dec(uint8_t *o, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
}

/* The ids of one request: trace ids of its traces, span ids of its spans. */
typedef struct ids_s {
    uint8_t (*trace)[16];
    uint8_t (*span)[8];
} ids_t;

/* Writes the body of template t into out with the ids of the request whose first trace
 * is trace_n and first span span_n, and times moved so that the batch's base is base_ns. */
static void patch(uint8_t *out, const tmpl_t *t, ids_t *ids, int batch, uint64_t trace_n,
                  uint64_t span_n, uint64_t base_ns)
{
    memcpy(out, t->body.p, t->body.n);
    int ntraces = batch / TRACE_SPANS;
    for (int i = 0; i < ntraces; i++) trace_id(trace_n + (uint64_t)i, ids->trace[i]);
    for (int i = 0; i < batch; i++) {
        uint64_t v = span_id(span_n + (uint64_t)i);
        for (int k = 0; k < 8; k++) ids->span[i][k] = (uint8_t)(v >> (56 - 8 * k));
    }
    const fix_t *f = t->body.f, *end = f + t->body.nf;
    for (; f < end; f++) {
        uint8_t *o = out + f->off;
        switch (f->type) {
        case FIX_TRACE: {
            const uint8_t *v = ids->trace[f->span / TRACE_SPANS];
            if (f->enc == ENC_BIN) memcpy(o, v, 16);
            else put_hex(o, v, 16);
            break;
        }
        case FIX_SPAN:
        case FIX_PARENT: {
            const uint8_t *v = ids->span[f->span];
            if (f->enc == ENC_BIN) memcpy(o, v, 8);
            else put_hex(o, v, 8);
            break;
        }
        case FIX_TIME: {
            uint64_t ns = base_ns + f->rel;
            if (f->enc == ENC_BIN) {
                for (int k = 0; k < 8; k++) o[k] = (uint8_t)(ns >> (8 * k)); /* fixed64: little-endian */
            } else {
                put_dec(o, f->div_us ? ns / 1000 : ns, f->width);
            }
            break;
        }
        case FIX_DIGITS: put_dec(o, rnd_below(100000000), 8); break;
        }
    }
}

/* ---- HTTP responses ------------------------------------------------------------------ */

typedef struct resp_s {
    int status;
    size_t total;     /* bytes of the whole response */
    bool close;       /* Connection: close */
    long retry_after; /* seconds, -1 when absent */
    const char *body; /* in the read buffer, or in dechunked */
    size_t body_n;
} resp_t;

static bool head_is(const char *line, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && strncasecmp(line, name, k) == 0 && line[k] == ':';
}
static const char *head_value(const char *line, size_t n, const char *name, size_t *vn)
{
    const char *v = line + strlen(name) + 1, *e = line + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    *vn = (size_t)(e - v);
    return v;
}

/* One response from buf[0..len): 1 when complete (r filled; a chunked body is copied into
 * *dc, grown as needed), 0 when more is needed, -1 when it is not HTTP. */
static int parse_response(const char *buf, size_t len, resp_t *r, buf_t *dc)
{
    const char *he = memmem(buf, len, "\r\n\r\n", 4);
    if (!he) return len > 65536 ? -1 : 0;
    size_t hl = (size_t)(he - buf) + 4;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
    r->status = atoi(buf + 9);
    r->close = false;
    r->retry_after = -1;
    long long clen = -1;
    bool chunked = false;
    const char *line = memchr(buf, '\n', hl) + 1;
    while (line < buf + hl - 2) {
        const char *nl = memchr(line, '\r', (size_t)(buf + hl - line));
        size_t n = (size_t)(nl - line), vn;
        const char *v;
        if (head_is(line, n, "content-length")) {
            v = head_value(line, n, "content-length", &vn);
            clen = strtoll(v, NULL, 10);
        } else if (head_is(line, n, "transfer-encoding")) {
            v = head_value(line, n, "transfer-encoding", &vn);
            chunked = vn >= 7 && strncasecmp(v + vn - 7, "chunked", 7) == 0;
        } else if (head_is(line, n, "connection")) {
            v = head_value(line, n, "connection", &vn);
            r->close = vn == 5 && strncasecmp(v, "close", 5) == 0;
        } else if (head_is(line, n, "retry-after")) {
            v = head_value(line, n, "retry-after", &vn);
            r->retry_after = isdigit((unsigned char)*v) ? strtol(v, NULL, 10) : -1;
        }
        line = nl + 2;
    }
    if (chunked) {
        size_t at = hl;
        dc->n = 0;
        for (;;) {
            const char *le = memmem(buf + at, len - at, "\r\n", 2);
            if (!le) return 0;
            char *endp;
            unsigned long long sz = strtoull(buf + at, &endp, 16);
            if (endp == buf + at) return -1;
            at = (size_t)(le - buf) + 2;
            if (sz == 0) { /* trailers, then an empty line */
                for (;;) {
                    const char *te = memmem(buf + at, len - at, "\r\n", 2);
                    if (!te) return 0;
                    bool empty = te == buf + at;
                    at = (size_t)(te - buf) + 2;
                    if (empty) break;
                }
                break;
            }
            if (sz > MAX_BODY || len - at < sz + 2) return sz > MAX_BODY ? -1 : 0;
            b_put(dc, buf + at, sz);
            at += sz + 2;
        }
        r->total = at;
        r->body = (const char *)dc->p;
        r->body_n = dc->n;
        return 1;
    }
    if (clen < 0) clen = 0; /* no body: an answer to a request always says its length */
    if ((unsigned long long)clen > MAX_BODY) return -1;
    if (len - hl < (size_t)clen) return 0;
    r->total = hl + (size_t)clen;
    r->body = buf + hl;
    r->body_n = (size_t)clen;
    return 1;
}

/* Spans an OTLP answer says were rejected (partial_success.rejected_spans), 0 if none. */
static long rejected_spans(int format, const char *body, size_t n)
{
    if (format == F_OTLP_PROTO) {
        /* ExportTraceServiceResponse { partial_success = 1 { rejected_spans = 1 (int64) } } */
        const uint8_t *p = (const uint8_t *)body, *e = p + n;
        while (p < e) {
            uint64_t key = 0;
            int sh = 0;
            while (p < e && (*p & 0x80)) key |= (uint64_t)(*p++ & 0x7f) << sh, sh += 7;
            if (p == e) return 0;
            key |= (uint64_t)*p++ << sh;
            if (key == 0x0a) { /* field 1, length-delimited: look inside */
                uint64_t len = 0;
                sh = 0;
                while (p < e && (*p & 0x80)) len |= (uint64_t)(*p++ & 0x7f) << sh, sh += 7;
                if (p == e) return 0;
                len |= (uint64_t)*p++ << sh;
                const uint8_t *q = p, *qe = p + len > e ? e : p + len;
                if (q < qe && *q == 0x08) {
                    q++;
                    uint64_t v = 0;
                    sh = 0;
                    while (q < qe && (*q & 0x80)) v |= (uint64_t)(*q++ & 0x7f) << sh, sh += 7;
                    if (q < qe) v |= (uint64_t)*q << sh;
                    return (long)v;
                }
                return 0;
            }
            return 0; /* anything else: no partial success */
        }
        return 0;
    }
    if (format == F_OTLP_JSON) {
        const char *k = memmem(body, n, "\"rejectedSpans\"", 15);
        if (!k) return 0;
        const char *p = k + 15, *e = body + n;
        while (p < e && (*p == ' ' || *p == ':' || *p == '"')) p++;
        return p < e ? strtol(p, NULL, 10) : 0;
    }
    return 0;
}

/* ---- sockets ------------------------------------------------------------------------- */

static struct sockaddr_in server_addr;

static int connect_to(bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- ingest ---------------------------------------------------------------------------- */

typedef struct opts_s {
    const char *host;
    int port;
    int format;
    int conns, batch, templates;
    double warmup, duration, timeout;
    uint64_t spans; /* 0: timed run */
    const char *ids_path, *sent_path, *times_path;
    long ids_max;
    long server_pid;
    long retry_max_ms;
    /* query */
    const char *kind;
    long count, qwarmup, limit, trace_spans;
    const char *min_duration;
} opts_t;

enum { C_CONNECTING, C_SENDING, C_READING, C_WAITING, C_IDLE };

typedef struct conn_s {
    int fd;
    int state;
    uint8_t *out;
    size_t out_n, out_sent, out_cap;
    char *in;
    size_t in_n, in_cap;
    uint64_t t_sent, deadline, resume_at;
    uint64_t trace_n; /* the first trace of the batch in flight */
    bool in_flight;   /* a batch is assigned (sending, reading or waiting to resend) */
} conn_t;

typedef struct stats_s {
    uint64_t spans, requests, r429, errors, rejected;
    double *lat_ms;
    size_t nlat, caplat;
} stats_t;

static void lat_add(stats_t *s, double ms)
{
    if (s->nlat == s->caplat) {
        s->caplat = s->caplat ? s->caplat * 2 : 4096;
        s->lat_ms = xrealloc(s->lat_ms, s->caplat * sizeof *s->lat_ms);
    }
    s->lat_ms[s->nlat++] = ms;
}
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
/* the q-quantile (nearest rank) of sorted v[0..n) */
static double quantile(const double *v, size_t n, double q)
{
    if (!n) return -1;
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return v[k - 1];
}

static int epfd;
static tmpl_t *tmpls;
static opts_t O;
static ids_t ids;
static uint64_t next_trace, next_span; /* counters for the next request */
static uint64_t issued_spans;          /* spans assigned to a request so far */
static uint8_t (*reservoir)[16];
static uint64_t reservoir_seen;
static size_t reservoir_n;
static FILE *sent_f;
static int printed_errors;

static void ep_set(conn_t *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

static void conn_open(conn_t *c)
{
    c->fd = connect_to(true);
    if (c->fd < 0) die("cannot connect to %s:%d: %s", O.host, O.port, strerror(errno));
    c->state = C_CONNECTING;
    c->in_n = 0;
    c->deadline = mono_ns() + (uint64_t)(O.timeout * 1e9);
    ep_set(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static void conn_close(conn_t *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void conn_reopen(conn_t *c)
{
    conn_close(c);
    conn_open(c);
}

/* c has nothing more to send: its socket stays open (and unwatched) until the end */
static void conn_idle(conn_t *c)
{
    c->state = C_IDLE;
    if (c->fd >= 0) ep_set(c, 0, EPOLL_CTL_MOD);
}

/* Gives c a new batch: a template picked at random, patched with fresh ids. */
static void conn_new_batch(conn_t *c)
{
    const tmpl_t *t = &tmpls[rnd_below((uint64_t)O.templates)];
    size_t need = t->head_n + t->body.n;
    if (need > c->out_cap) {
        c->out = xrealloc(c->out, need);
        c->out_cap = need;
    }
    memcpy(c->out, t->head, t->head_n);
    c->trace_n = next_trace;
    /* all spans of the batch end before now: the base is 3 s back (a trace starts up to 1 s
       after the base and lasts at most 2 s) */
    patch(c->out + t->head_n, t, &ids, O.batch, next_trace, next_span, real_ns() - 3000000000ull);
    next_trace += (uint64_t)(O.batch / TRACE_SPANS);
    next_span += (uint64_t)O.batch;
    issued_spans += (uint64_t)O.batch;
    c->out_n = need;
    c->in_flight = true;
}

static void conn_send(conn_t *c)
{
    c->out_sent = 0;
    c->in_n = 0;
    c->state = C_SENDING;
    c->t_sent = mono_ns();
    c->deadline = c->t_sent + (uint64_t)(O.timeout * 1e9);
    ep_set(c, EPOLLOUT, EPOLL_CTL_MOD);
}

static bool want_more(bool stopping)
{
    if (stopping) return false;
    return O.spans == 0 || issued_spans < O.spans;
}

static void record_ids(const conn_t *c)
{
    uint64_t ntr = (uint64_t)(O.batch / TRACE_SPANS);
    for (uint64_t i = 0; reservoir && i < ntr; i++) {
        uint8_t id[16];
        trace_id(c->trace_n + i, id);
        reservoir_seen++;
        if (reservoir_n < (size_t)O.ids_max) {
            memcpy(reservoir[reservoir_n++], id, 16);
        } else {
            uint64_t k = rnd_below(reservoir_seen);
            if (k < (uint64_t)O.ids_max) memcpy(reservoir[k], id, 16);
        }
    }
    if (sent_f) fprintf(sent_f, "%s %" PRIu64 " %d\n", format_names[O.format], ntr, O.batch);
}

static void error_note(const char *fmt, ...)
{
    if (printed_errors++ >= 5) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("collector_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int run_ingest(void)
{
    tmpls = xmalloc((size_t)O.templates * sizeof *tmpls);
    make_templates(tmpls, O.templates, O.format, O.batch, O.host, O.port);
    size_t body_sum = 0;
    for (int i = 0; i < O.templates; i++) body_sum += tmpls[i].body.n;
    ids.trace = xmalloc((size_t)(O.batch / TRACE_SPANS) * 16);
    ids.span = xmalloc((size_t)O.batch * 8);
    if (O.ids_path) reservoir = xmalloc((size_t)O.ids_max * 16);
    if (O.sent_path && !(sent_f = fopen(O.sent_path, "a"))) die("%s: %s", O.sent_path, strerror(errno));
    fprintf(stderr, "collector_load: %s, %d templates of %d spans, %.0f bytes a body on average, %d connections\n",
            format_names[O.format], O.templates, O.batch, (double)body_sum / O.templates, O.conns);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1: %s", strerror(errno));
    conn_t *conns = calloc((size_t)O.conns, sizeof *conns);
    if (!conns) die("out of memory");
    for (int i = 0; i < O.conns; i++) conn_open(&conns[i]);

    stats_t all = {0}, win = {0};
    uint64_t t0 = mono_ns();
    uint64_t win_start = O.spans ? t0 : t0 + (uint64_t)(O.warmup * 1e9);
    uint64_t win_end = O.spans ? UINT64_MAX : win_start + (uint64_t)(O.duration * 1e9);
    bool in_window = O.spans != 0, stopping = false, window_done = false;
    double cpu0 = cpu_self_s(), scpu0 = cpu_pid_s(O.server_pid), cpu1 = 0, scpu1 = -1;
    double swait0 = wait_pid_s(O.server_pid), swait1 = -1;
    uint64_t t_end = 0, stop_deadline = 0;
    if (in_window) {
        cpu0 = cpu_self_s();
        scpu0 = cpu_pid_s(O.server_pid);
        swait0 = wait_pid_s(O.server_pid);
    }
    int busy = O.conns; /* connections with a batch in flight, or still to be given one */
    struct epoll_event evs[64];

    while (busy > 0) {
        uint64_t now = mono_ns();
        if (!in_window && !window_done && now >= win_start) {
            in_window = true;
            cpu0 = cpu_self_s();
            scpu0 = cpu_pid_s(O.server_pid);
            swait0 = wait_pid_s(O.server_pid);
        }
        if (in_window && O.spans == 0 && now >= win_end) {
            in_window = false;
            window_done = true;
            stopping = true;
            t_end = now;
            cpu1 = cpu_self_s();
            scpu1 = cpu_pid_s(O.server_pid);
            swait1 = wait_pid_s(O.server_pid);
            stop_deadline = now + 30000000000ull;
        }
        if (stopping && now > stop_deadline) {
            fprintf(stderr, "collector_load: %d requests still unanswered 30 s after the end\n", busy);
            all.errors += (uint64_t)busy;
            break;
        }
        /* timers: resends after a 429, and requests past their deadline */
        int timeout_ms = 100;
        for (int i = 0; i < O.conns; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_IDLE) continue;
            if (c->state == C_WAITING) {
                if (now >= c->resume_at) {
                    if (c->fd < 0) conn_open(c); /* sends the batch once connected */
                    else conn_send(c);
                } else {
                    int ms = (int)((c->resume_at - now) / 1000000) + 1;
                    if (ms < timeout_ms) timeout_ms = ms;
                }
            } else if (now > c->deadline) {
                error_note("no answer within %.0f s (connection %d, state %d): reconnecting", O.timeout, i, c->state);
                all.errors++;
                if (in_window) win.errors++;
                conn_reopen(c); /* the batch is sent again */
            }
        }
        int n = epoll_wait(epfd, evs, 64, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int e = 0; e < n; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) die("cannot connect to %s:%d: %s", O.host, O.port, strerror(err));
                if (!c->in_flight) {
                    if (!want_more(stopping)) {
                        conn_idle(c);
                        busy--;
                        continue;
                    }
                    conn_new_batch(c);
                }
                conn_send(c);
            }
            if (c->state == C_SENDING) {
                while (c->out_sent < c->out_n) {
                    ssize_t w = send(c->fd, c->out + c->out_sent, c->out_n - c->out_sent, MSG_NOSIGNAL);
                    if (w < 0) {
                        if (errno == EAGAIN) break;
                        error_note("write: %s: reconnecting", strerror(errno));
                        all.errors++;
                        if (in_window) win.errors++;
                        conn_reopen(c);
                        goto next;
                    }
                    c->out_sent += (size_t)w;
                }
                if (c->out_sent == c->out_n) {
                    c->state = C_READING;
                    ep_set(c, EPOLLIN, EPOLL_CTL_MOD);
                }
                continue;
            }
            if (c->state != C_READING) continue;
            bool eof = false;
            for (;;) {
                if (c->in_cap - c->in_n < 16384) {
                    c->in_cap = c->in_cap ? c->in_cap * 2 : 65536;
                    if (c->in_cap > MAX_BODY + 65536) die("an answer of more than %u bytes", MAX_BODY);
                    c->in = xrealloc(c->in, c->in_cap);
                }
                ssize_t r = read(c->fd, c->in + c->in_n, c->in_cap - c->in_n);
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) {
                    eof = true;
                    break;
                }
                c->in_n += (size_t)r;
            }
            {
                resp_t rs;
                buf_t dc = {0};
                int pr = parse_response(c->in, c->in_n, &rs, &dc);
                if (pr < 0) die("not an HTTP answer: %.60s", c->in);
                if (pr == 0) {
                    b_free(&dc);
                    if (eof) {
                        error_note("the server closed the connection before answering: reconnecting");
                        all.errors++;
                        if (in_window) win.errors++;
                        conn_reopen(c); /* the batch is sent again */
                    }
                    continue;
                }
                uint64_t done = mono_ns();
                double ms = (double)(done - c->t_sent) / 1e6;
                bool counts = in_window && done >= win_start;
                if (rs.status >= 200 && rs.status < 300) {
                    long rej = rejected_spans(O.format, rs.body, rs.body_n);
                    if (rej < 0 || rej > O.batch) rej = O.batch;
                    if (rej) error_note("%ld spans rejected: %.*s", rej, (int)(rs.body_n > 300 ? 300 : rs.body_n), rs.body);
                    all.spans += (uint64_t)(O.batch - rej);
                    all.requests++;
                    all.rejected += (uint64_t)rej;
                    lat_add(&all, ms);
                    if (counts) {
                        win.spans += (uint64_t)(O.batch - rej);
                        win.requests++;
                        win.rejected += (uint64_t)rej;
                        lat_add(&win, ms);
                    }
                    record_ids(c);
                    c->in_flight = false;
                } else if (rs.status == 429) {
                    all.r429++;
                    if (counts) win.r429++;
                } else {
                    error_note("answer %d: %.*s", rs.status, (int)(rs.body_n > 300 ? 300 : rs.body_n), rs.body);
                    all.errors++;
                    if (counts) win.errors++;
                    c->in_flight = false; /* not sent again: a request refused for what it is */
                    if (all.errors >= 100) die("100 errors: giving up");
                }
                if (c->in_n > rs.total) die("the server answered more than was asked");
                c->in_n = 0;
                bool closing = rs.close || eof;
                long retry_after = rs.retry_after;
                int status = rs.status;
                b_free(&dc);
                if (closing) conn_close(c);
                if (status == 429) { /* the same body again, later */
                    long wait_ms = retry_after >= 0 ? retry_after * 1000 : 100;
                    if (wait_ms > O.retry_max_ms) wait_ms = O.retry_max_ms;
                    c->resume_at = done + (uint64_t)wait_ms * 1000000u;
                    c->state = C_WAITING;
                    if (c->fd >= 0) ep_set(c, 0, EPOLL_CTL_MOD);
                    continue;
                }
                if (!want_more(stopping)) {
                    conn_idle(c);
                    busy--;
                    continue;
                }
                conn_new_batch(c);
                if (c->fd < 0) conn_open(c); /* sends it once connected */
                else conn_send(c);
            }
        next:;
        }
    }
    uint64_t t_now = mono_ns();
    if (O.spans) {
        t_end = t_now;
        cpu1 = cpu_self_s();
        scpu1 = cpu_pid_s(O.server_pid);
        swait1 = wait_pid_s(O.server_pid);
    } else if (!window_done) {
        die("the run ended before its window did");
    }
    stats_t *s = &win;
    double secs = (double)(t_end - win_start) / 1e9;
    qsort(s->lat_ms, s->nlat, sizeof *s->lat_ms, cmp_double);
    double scpu = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;
    double swait = swait0 >= 0 && swait1 >= 0 ? swait1 - swait0 : -1;
    printf("result mode=ingest format=%s seconds=%.3f spans=%" PRIu64 " spans_per_s=%.0f requests=%" PRIu64
           " r429=%" PRIu64 " errors=%" PRIu64 " rejected=%" PRIu64 " p50_ms=%.3f p99_ms=%.3f load_cpu_s=%.3f"
           " server_cpu_s=%.3f server_wait_s=%.3f all_spans=%" PRIu64 " all_errors=%" PRIu64 "\n",
           format_names[O.format], secs, s->spans, secs > 0 ? (double)s->spans / secs : 0, s->requests,
           s->r429, s->errors, s->rejected, quantile(s->lat_ms, s->nlat, 0.5),
           quantile(s->lat_ms, s->nlat, 0.99), cpu1 - cpu0, scpu, swait, all.spans, all.errors);
    if (O.ids_path) {
        FILE *f = fopen(O.ids_path, "w");
        if (!f) die("%s: %s", O.ids_path, strerror(errno));
        for (size_t i = 0; i < reservoir_n; i++) {
            uint8_t h[33];
            put_hex(h, reservoir[i], 16);
            h[32] = 0;
            fprintf(f, "%s\n", (char *)h);
        }
        if (fclose(f) != 0) die("%s: %s", O.ids_path, strerror(errno));
    }
    if (sent_f && fclose(sent_f) != 0) die("%s: %s", O.sent_path, strerror(errno));
    int rc = all.errors || all.rejected ? 1 : 0;
    for (int i = 0; i < O.conns; i++) {
        if (conns[i].fd >= 0) close(conns[i].fd);
        free(conns[i].out);
        free(conns[i].in);
    }
    free(conns);
    for (int i = 0; i < O.templates; i++) b_free(&tmpls[i].body);
    free(tmpls);
    free(ids.trace);
    free(ids.span);
    free(reservoir);
    free(all.lat_ms);
    free(win.lat_ms);
    close(epfd);
    return rc;
}

/* ---- query ----------------------------------------------------------------------------- */

static size_t count_of(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle), c = 0;
    const char *p = hay, *e = hay + n;
    while ((p = memmem(p, (size_t)(e - p), needle, k)) != NULL) {
        c++;
        p += k;
    }
    return c;
}

/* One GET on the blocking connection *fd (reopened when the server closed it); the
 * answer into *r (its body in *in or *dc). Returns the latency in ms, or -1. */
static double get_once(int *fd, const char *path, char **in, size_t *cap, resp_t *r, buf_t *dc)
{
    char req[1024];
    int rn = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: weft-bench-collector\r\n\r\n",
                      path, O.host, O.port);
    if (rn < 0 || (size_t)rn >= sizeof req) die("path too long");
    for (int attempt = 0; attempt < 2; attempt++) {
        if (*fd < 0 && (*fd = connect_to(false)) < 0) die("cannot connect to %s:%d: %s", O.host, O.port, strerror(errno));
        uint64_t t0 = mono_ns();
        size_t sent = 0;
        bool broken = false;
        while (sent < (size_t)rn) {
            ssize_t w = send(*fd, req + sent, (size_t)rn - sent, MSG_NOSIGNAL);
            if (w <= 0) {
                broken = true;
                break;
            }
            sent += (size_t)w;
        }
        size_t n = 0;
        while (!broken) {
            if (*cap - n < 65536) {
                *cap = *cap ? *cap * 2 : 262144;
                if (*cap > MAX_BODY + 262144) die("an answer of more than %u bytes", MAX_BODY);
                *in = xrealloc(*in, *cap);
            }
            struct pollfd pf = {.fd = *fd, .events = POLLIN};
            int pr = poll(&pf, 1, (int)(O.timeout * 1000));
            if (pr == 0) die("no answer to GET %s within %.0f s", path, O.timeout);
            ssize_t got = read(*fd, *in + n, *cap - n);
            if (got <= 0) {
                broken = n == 0; /* a kept-alive connection the server had closed: once more */
                if (!broken) die("the server closed the connection in the middle of an answer to GET %s", path);
                break;
            }
            n += (size_t)got;
            int p = parse_response(*in, n, r, dc);
            if (p < 0) die("not an HTTP answer to GET %s: %.60s", path, *in);
            if (p == 1) {
                double ms = (double)(mono_ns() - t0) / 1e6;
                if (r->close || n > r->total) {
                    close(*fd);
                    *fd = -1;
                }
                return ms;
            }
        }
        close(*fd);
        *fd = -1;
    }
    die("the server closed the connection twice without answering GET %s", path);
    return -1;
}

static int run_query(void)
{
    bool trace = strcmp(O.kind, "trace") == 0;
    char (*idl)[33] = NULL;
    size_t nid = 0, capid = 0;
    if (trace) {
        if (!O.ids_path) bad_option("query --kind trace wants --ids FILE");
        FILE *f = fopen(O.ids_path, "r");
        if (!f) die("%s: %s", O.ids_path, strerror(errno));
        char line[128];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\r\n")] = 0;
            if (strlen(line) != 32) continue;
            if (nid == capid) {
                capid = capid ? capid * 2 : 1024;
                idl = xrealloc(idl, capid * sizeof *idl);
            }
            memcpy(idl[nid++], line, 33);
        }
        fclose(f);
        if (!nid) die("%s holds no trace id", O.ids_path);
    }
    int fd = -1;
    char *in = NULL;
    size_t cap = 0;
    buf_t dc = {0};
    double *lat = xmalloc((size_t)O.count * sizeof *lat);
    size_t nlat = 0, failed = 0, empty = 0, traces_total = 0;
    FILE *times = NULL;
    if (O.times_path && !(times = fopen(O.times_path, "w"))) die("%s: %s", O.times_path, strerror(errno));
    double scpu0 = -1, swait0 = -1;
    for (long q = 0; q < O.qwarmup + O.count; q++) {
        if (q == O.qwarmup) {
            scpu0 = cpu_pid_s(O.server_pid);
            swait0 = wait_pid_s(O.server_pid);
        }
        char path[512];
        const char *want = NULL;
        if (trace) {
            const char *id = idl[rnd_below(nid)];
            snprintf(path, sizeof path, "/api/traces/%s", id);
            want = id;
            while (want[0] == '0' && want[1]) want++; /* Jaeger writes ids without leading zeros */
        } else {
            snprintf(path, sizeof path, "/api/traces?service=%s&minDuration=%s&limit=%ld",
                     svc_names[rnd_below(NSVC)], O.min_duration, O.limit);
        }
        resp_t r;
        double ms = get_once(&fd, path, &in, &cap, &r, &dc);
        bool counted = q >= O.qwarmup;
        bool ok = r.status == 200;
        size_t found = 0;
        if (ok && trace) {
            found = count_of(r.body, r.body_n, "\"operationName\"");
            ok = memmem(r.body, r.body_n, want, strlen(want)) != NULL &&
                 (O.trace_spans <= 0 || found == (size_t)O.trace_spans);
        } else if (ok) {
            found = count_of(r.body, r.body_n, "\"processes\"");
            if (found > (size_t)O.limit) ok = false;
        }
        if (!ok) {
            if (printed_errors++ < 5)
                fprintf(stderr, "collector_load: GET %s: %d, %zu %s: %.*s\n", path, r.status, found,
                        trace ? "spans" : "traces", (int)(r.body_n > 300 ? 300 : r.body_n), r.body);
        }
        if (!counted) continue;
        if (!ok) failed++;
        if (!trace && found == 0) empty++;
        traces_total += found;
        lat[nlat++] = ms;
        if (times) fprintf(times, "%.4f\n", ms);
    }
    double scpu1 = cpu_pid_s(O.server_pid), swait1 = wait_pid_s(O.server_pid);
    double scpu = scpu0 >= 0 && scpu1 >= 0 ? scpu1 - scpu0 : -1;
    double swait = swait0 >= 0 && swait1 >= 0 ? swait1 - swait0 : -1;
    if (times && fclose(times) != 0) die("%s: %s", O.times_path, strerror(errno));
    if (fd >= 0) close(fd);
    double sum = 0;
    for (size_t i = 0; i < nlat; i++) sum += lat[i];
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("result mode=query kind=%s queries=%zu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f"
           " failed=%zu empty=%zu %s=%.2f server_cpu_s=%.3f server_wait_s=%.3f\n",
           O.kind, nlat, quantile(lat, nlat, 0.5), quantile(lat, nlat, 0.9), quantile(lat, nlat, 0.99),
           nlat ? lat[nlat - 1] : -1, nlat ? sum / (double)nlat : -1, failed, empty,
           trace ? "spans_mean" : "traces_mean", nlat ? (double)traces_total / (double)nlat : 0, scpu, swait);
    free(lat);
    free(in);
    b_free(&dc);
    free(idl);
    return failed ? 1 : 0;
}

/* ---- options ---------------------------------------------------------------------------- */

static long opt_long(const char *name, const char *v, long lo, long hi)
{
    char *e;
    errno = 0;
    long x = strtol(v, &e, 10);
    if (errno || *e || e == v || x < lo || x > hi) bad_option("%s wants an integer in %ld..%ld, not '%s'", name, lo, hi, v);
    return x;
}
static double opt_double(const char *name, const char *v, double lo, double hi)
{
    char *e;
    double x = strtod(v, &e);
    if (*e || e == v || !(x >= lo && x <= hi)) bad_option("%s wants a number in %g..%g, not '%s'", name, lo, hi, v);
    return x;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "ingest") != 0 && strcmp(argv[1], "query") != 0))
        bad_option("usage: collector_load ingest|query --port P ... (see the comment atop bench/collector/load.c)");
    bool ingest = strcmp(argv[1], "ingest") == 0;
    O = (opts_t){.host = "127.0.0.1", .format = -1, .conns = 16, .batch = 100, .templates = 256,
                 .warmup = 2, .duration = 5, .timeout = 10, .ids_max = 100000, .retry_max_ms = 1000,
                 .kind = "trace", .count = 2000, .qwarmup = 10, .limit = 20, .trace_spans = TRACE_SPANS,
                 .min_duration = "100ms"};
    uint64_t seed = 0;
    bool have_seed = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) bad_option("%s wants a value", a);
        i++;
        if (!strcmp(a, "--host")) O.host = v;
        else if (!strcmp(a, "--port")) O.port = (int)opt_long(a, v, 1, 65535);
        else if (!strcmp(a, "--format")) {
            for (int k = 0; k < 3; k++)
                if (!strcmp(v, format_names[k])) O.format = k;
            if (O.format < 0) bad_option("--format wants otlp-proto, otlp-json or zipkin, not '%s'", v);
        } else if (!strcmp(a, "--conns")) O.conns = (int)opt_long(a, v, 1, 4096);
        else if (!strcmp(a, "--batch")) O.batch = (int)opt_long(a, v, TRACE_SPANS, 10000);
        else if (!strcmp(a, "--templates")) O.templates = (int)opt_long(a, v, 1, 100000);
        else if (!strcmp(a, "--warmup")) { /* seconds (ingest) or queries (query) */
            O.warmup = opt_double(a, v, 0, 1000000);
            O.qwarmup = (long)O.warmup;
        }
        else if (!strcmp(a, "--duration")) O.duration = opt_double(a, v, 0.1, 86400);
        else if (!strcmp(a, "--timeout")) O.timeout = opt_double(a, v, 0.1, 3600);
        else if (!strcmp(a, "--spans")) O.spans = (uint64_t)opt_long(a, v, 1, 1000000000000L);
        else if (!strcmp(a, "--ids")) O.ids_path = v;
        else if (!strcmp(a, "--ids-max")) O.ids_max = opt_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--sent")) O.sent_path = v;
        else if (!strcmp(a, "--times")) O.times_path = v;
        else if (!strcmp(a, "--server-pid")) O.server_pid = opt_long(a, v, 1, 1L << 30);
        else if (!strcmp(a, "--retry-max-ms")) O.retry_max_ms = opt_long(a, v, 0, 600000);
        else if (!strcmp(a, "--seed")) { seed = (uint64_t)opt_long(a, v, 0, INT64_MAX); have_seed = true; }
        else if (!strcmp(a, "--kind")) {
            if (strcmp(v, "trace") && strcmp(v, "search")) bad_option("--kind wants trace or search, not '%s'", v);
            O.kind = v;
        } else if (!strcmp(a, "--count")) O.count = opt_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--limit")) O.limit = opt_long(a, v, 1, 100000);
        else if (!strcmp(a, "--trace-spans")) O.trace_spans = opt_long(a, v, 0, 1000000);
        else if (!strcmp(a, "--min-duration")) O.min_duration = v;
        else bad_option("unknown option %s", a);
    }
    if (!O.port) bad_option("--port is required");
    if (ingest && O.format < 0) bad_option("ingest wants --format otlp-proto|otlp-json|zipkin");
    if (O.batch % TRACE_SPANS) bad_option("--batch must be a multiple of %d (the spans of a trace)", TRACE_SPANS);
    for (const char *p = O.min_duration; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.') bad_option("--min-duration: '%s' is not a duration", O.min_duration);
    if (!have_seed && getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) die("getrandom: %s", strerror(errno));
    rng_state = mix64(seed + 0x9e3779b97f4a7c15ull) | 1;
    seed_a = mix64(seed ^ 0x1111111111111111ull);
    seed_b = mix64(seed ^ 0x2222222222222222ull);
    seed_c = mix64(seed ^ 0x3333333333333333ull);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)O.port);
    if (inet_pton(AF_INET, O.host, &server_addr.sin_addr) != 1) bad_option("--host wants an IPv4 address, not '%s'", O.host);
    signal(SIGPIPE, SIG_IGN);
    setup_services();
    if (real_ns() / 1000000000ull < 1000000000ull || real_ns() / 1000ull >= 10000000000000000ull)
        die("the clock is not in the years this tool writes times for (19-digit ns, 16-digit us)");
    setvbuf(stdout, NULL, _IOLBF, 0);
    return ingest ? run_ingest() : run_query();
}
