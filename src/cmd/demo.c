/*
 * demo.c - `weft demo`: the platform at work in one command, for a newcomer to look at.
 *
 * It starts `weft serve` on its embedded defaults (the ports `make run` uses) and four
 * examples/hello instances that register with its registry and send their spans to its
 * collector: frontend -> orders -> inventory, two of inventory, one of which answers 500
 * to a share of its requests (hello --fail-rate). weft serve's gateway gets two routes (a
 * YAML file the demo writes into the data directory): paths under /inventory straight
 * to inventory, anything else to frontend. Then the demo itself sends a steady trickle of requests
 * through the gateway, some of which cross all three services, prints what it started and
 * the dashboard's URL (http://127.0.0.1:API/ui/), and a line of traffic counts now and
 * then, until SIGINT, SIGTERM or SIGHUP.
 *
 * Why child processes, weft serve included, rather than weft serve in this process: the
 * demo is then exactly what a user runs by hand (the same binary, flags and configuration
 * file, `kill -HUP` reloads its routes), the host's signal handling and control loop stay
 * weft serve's own, and the demo is a plain supervisor on one thread: fork and exec,
 * blocking requests with deadlines (cli_http.c), a flag set by the signal handler, and
 * waitpid. The children's output goes to one log file each in the data directory, so the
 * terminal shows the demo's lines only.
 *
 * No orphans: every child runs in one process group of its own (led by weft serve), which
 * a terminal's Ctrl-C does not reach, so the demo stops them in order: the hellos first
 * with SIGTERM (they deregister while the registry still runs), then weft serve, each
 * waited for with a deadline (10 s, then 15 s: weft serve's shutdown timeout is 10 s), and
 * whatever is left gets SIGKILL and is waited for (the children start no processes of
 * their own, so killing and reaping them by pid leaves nothing behind). A second signal
 * skips the waiting. Should the demo itself be killed outright, each child has asked the kernel
 * for SIGTERM when its parent dies (PR_SET_PDEATHSIG).
 *
 * Exit status: 0 when stopped by a signal and every child exited cleanly; 1 when a child
 * failed (exited early, was not ready in time, exited non-zero when stopped) or the data
 * directory could not be made; 2 for a usage error or a missing hello binary.
 * Threads: one (PR_SET_PDEATHSIG is tied to the thread that forked).
 */
#include "cmd/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cmd/cli_http.h"
#include "weft/weft.h"

#define NHELLO            4
#define READY_TIMEOUT_MS  30000 /* weft serve's API, then every instance passing */
#define HELLO_STOP_MS     10000
#define SERVE_STOP_MS     15000 /* weft serve's http.shutdown_timeout (10 s) and some */
#define REPORT_EVERY_MS   15000
#define CALL_TIMEOUT_MS   5000
#define DEFAULT_RATE      4.0
#define DEFAULT_FAIL_RATE 0.2

/* The demo's services: who calls whom is in the traffic's paths (hello's /call). */
typedef struct hello_spec_s {
    const char *service, *id;
    const char *role; /* for the summary */
    bool flaky;       /* started with --fail-rate */
} hello_spec_t;

static const hello_spec_t hellos[NHELLO] = {
    {"frontend", "frontend-1", "calls orders", false},
    {"orders", "orders-1", "calls inventory", false},
    {"inventory", "inventory-1", "", false},
    {"inventory", "inventory-2", "", true},
};

/* What the demo sends, in turn: a path through the gateway and what it crosses. */
static const char *const paths[] = {
    "/call/orders/call/inventory/hello/demo", /* frontend -> orders -> inventory */
    "/inventory/hello",                       /* route inventory, straight there */
    "/call/orders/call/inventory/hello/demo", /* the first again */
    "/hello/demo",                            /* frontend alone */
};

typedef struct addr_s {
    char host[64];    /* as given to weft serve: "127.0.0.1", "0.0.0.0", "::1" */
    char connect[64]; /* where to connect: the wildcard addresses become loopback */
    unsigned port;
} addr_t;

typedef struct child_s {
    char name[32]; /* "weft serve", "frontend-1" */
    pid_t pid;     /* 0: never started */
    bool reaped;
    int status; /* waitpid's, once reaped */
    char log[PATH_MAX];
    unsigned port; /* hellos: as registered */
} child_t;

typedef struct demo_s {
    char self[PATH_MAX];  /* this weft binary */
    char hello[PATH_MAX]; /* examples/hello */
    char data[PATH_MAX];  /* data directory */
    bool tmp_data;        /* made here: removed at the end */
    addr_t api, gateway, otlp, zipkin, dns;
    unsigned hello_port; /* the first hello's; 0: free ports */
    double rate, fail_rate;
    char **serve_args; /* after "--": passed on to weft serve */
    int nserve_args;
    child_t serve, hello_procs[NHELLO];
    pid_t pgid; /* the children's group (weft serve's pid); 0 before it starts */
} demo_t;

static volatile sig_atomic_t nsignals; /* SIGINT, SIGTERM, SIGHUP received */
static volatile sig_atomic_t last_signal;

static void on_signal(int sig)
{
    last_signal = sig;
    if (nsignals < 100) nsignals++;
}

void weft__demo_usage(FILE *f)
{
    fprintf(f,
            "usage: weft demo [flags] [-- WEFT SERVE FLAGS...]\n\n"
            "Starts weft serve on its default ports with four examples/hello instances\n"
            "(frontend -> orders -> inventory, two of inventory, one failing now and then)\n"
            "registered with its registry and traced by its collector, gateway routes to\n"
            "them and a steady trickle of traffic through the gateway; prints the dashboard's\n"
            "URL. Ctrl-C (SIGINT) or SIGTERM stops everything it started. See docs/demo.md.\n\n"
            "flags:\n"
            "  --api-port N        weft serve's HTTP API and dashboard (default %s)\n"
            "  --gateway-port N    the gateway (default %s)\n"
            "  --otlp-port N       the collector's OTLP/HTTP ingest (default %s)\n"
            "  --zipkin-port N     the collector's Zipkin port (default %s)\n"
            "  --dns-port N        the registry's DNS interface; 0: any free port (default %s)\n"
            "  --hello-port N      the first hello's port, the others the next three;\n"
            "                      0: free ports, as registered (default 0)\n"
            "  --hello PATH        the hello example (default: examples/hello beside weft)\n"
            "  --data-dir DIR      weft serve's data, the routes file and the processes' logs\n"
            "                      (default: a new temporary directory, removed at the end)\n"
            "  --rate N            requests a second through the gateway, 0-1000 (default %g)\n"
            "  --fail-rate R       share of inventory-2's requests answered 500, 0-1\n"
            "                      (default %g)\n"
            "  --help, -h          this text\n"
            "Flags after -- go to weft serve as they are (--workers 2, --log-level debug);\n"
            "its addresses are the demo's flags above.\n",
            weft__serve_default("api.listen"), weft__serve_default("gateway.listen"),
            weft__serve_default("otlp.listen"), weft__serve_default("zipkin.listen"),
            weft__serve_default("dns.listen"), DEFAULT_RATE, DEFAULT_FAIL_RATE);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "weft demo: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(weft demo --help lists the flags)\n");
    return 2;
}

/* ---- options ---- */

/* host:port or [v6]:port (as weft's defaults are written) into a; false when malformed. */
static bool addr_parse(addr_t *a, const char *text)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon) return false;
    const char *h = text;
    size_t hl = (size_t)(colon - text);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2;
    if (hl == 0 || hl >= sizeof(a->host)) return false;
    memcpy(a->host, h, hl);
    a->host[hl] = 0;
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p > 65535) return false;
    a->port = (unsigned)p;
    const char *c = strcmp(a->host, "0.0.0.0") == 0 ? "127.0.0.1"
                    : strcmp(a->host, "::") == 0    ? "::1"
                                                    : a->host;
    snprintf(a->connect, sizeof(a->connect), "%s", c);
    return true;
}

/* "host:port" for a flag or a URL: IPv6 in brackets. */
static const char *addr_str(const addr_t *a, bool connect, char *out, size_t cap)
{
    const char *h = connect ? a->connect : a->host;
    snprintf(out, cap, strchr(h, ':') ? "[%s]:%u" : "%s:%u", h, a->port);
    return out;
}

/* A whole number from min to max, digits only; false otherwise. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (!*s || strlen(s) > 10) return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return false;
    unsigned long v = strtoul(s, NULL, 10);
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= min && v <= max)) return false;
    *out = v;
    return true;
}

/* The value of flag argv[*i] ("--name VALUE" or "--name=VALUE") when it is `name`: *v is
 * set and *i moved past it; returns 1. 0: not this flag. -1: the value is missing. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **v)
{
    const char *a = argv[*i] + 2;
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *v = a + n + 1;
        return 1;
    }
    if (a[n]) return 0;
    if (*i + 1 >= argc) return -1;
    *v = argv[++*i];
    return 1;
}

/* Parses argv into d. Returns 0, 1 (--help printed: exit 0) or 2 (usage error printed). */
static int parse_args(demo_t *d, int argc, char **argv, const char **hello, const char **data)
{
    static const struct {
        const char *flag, *key;
        size_t off;
        unsigned min;
    } ports[] = {
        {"api-port", "api.listen", offsetof(demo_t, api), 1},
        {"gateway-port", "gateway.listen", offsetof(demo_t, gateway), 1},
        {"otlp-port", "otlp.listen", offsetof(demo_t, otlp), 1},
        {"zipkin-port", "zipkin.listen", offsetof(demo_t, zipkin), 1},
        {"dns-port", "dns.listen", offsetof(demo_t, dns), 0},
    };
    for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
        addr_t *a = (addr_t *)((char *)d + ports[k].off);
        if (!addr_parse(a, weft__serve_default(ports[k].key))) {
            fprintf(stderr, "weft demo: weft serve's default %s is not host:port\n", ports[k].key);
            return 2;
        }
    }
    d->rate = DEFAULT_RATE;
    d->fail_rate = DEFAULT_FAIL_RATE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            weft__demo_usage(stdout);
            return 1;
        }
        if (strcmp(a, "--") == 0) {
            d->serve_args = argv + i + 1;
            d->nserve_args = argc - i - 1;
            break;
        }
        if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument \"%s\"", a);
        int got = 0;
        for (size_t k = 0; !got && k < sizeof(ports) / sizeof(ports[0]); k++) {
            got = flag_value(argc, argv, &i, ports[k].flag, &v);
            if (got < 0) return usage_error("--%s: expected a value", ports[k].flag);
            unsigned long p;
            if (got && !parse_uint(v, ports[k].min, 65535, &p))
                return usage_error("--%s: expected a port from %u to 65535, got \"%s\"",
                                   ports[k].flag, ports[k].min, v);
            if (got) ((addr_t *)((char *)d + ports[k].off))->port = (unsigned)p;
        }
        if (got) continue;
        if ((got = flag_value(argc, argv, &i, "hello-port", &v)) != 0) {
            unsigned long p;
            if (got < 0) return usage_error("--hello-port: expected a value");
            if (!parse_uint(v, 0, 65535 - (NHELLO - 1), &p))
                return usage_error("--hello-port: expected a port from 0 to %u (it and the "
                                   "next %u), got \"%s\"",
                                   65535 - (NHELLO - 1), NHELLO - 1, v);
            d->hello_port = (unsigned)p;
        } else if ((got = flag_value(argc, argv, &i, "hello", &v)) != 0) {
            if (got < 0 || !*v) return usage_error("--hello: expected a path");
            *hello = v;
        } else if ((got = flag_value(argc, argv, &i, "data-dir", &v)) != 0) {
            if (got < 0 || !*v) return usage_error("--data-dir: expected a directory");
            *data = v;
        } else if ((got = flag_value(argc, argv, &i, "rate", &v)) != 0) {
            if (got < 0 || !parse_number(v, 0, 1000, &d->rate))
                return usage_error("--rate: expected requests a second from 0 to 1000, got "
                                   "\"%s\"",
                                   got < 0 ? "" : v);
        } else if ((got = flag_value(argc, argv, &i, "fail-rate", &v)) != 0) {
            if (got < 0 || !parse_number(v, 0, 1, &d->fail_rate))
                return usage_error("--fail-rate: expected a number from 0 to 1, got \"%s\"",
                                   got < 0 ? "" : v);
        } else {
            return usage_error("unknown flag \"%s\"", a);
        }
    }
    return 0;
}

/* ---- files ---- */

/* out = dir/name; false when it does not fit in cap bytes. */
static bool path_join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b >= cap) return false;
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
    return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* The data directory: the given one (made if missing), or a new temporary one. */
static int make_data_dir(demo_t *d, const char *given)
{
    if (given) {
        /* room for the longest name put in it ("inventory-2.log") */
        if (strlen(given) + 32 >= sizeof(d->data)) {
            fprintf(stderr, "weft demo: --data-dir: path too long\n");
            return 2;
        }
        memcpy(d->data, given, strlen(given) + 1);
        if (mkdir(d->data, 0750) != 0 && errno != EEXIST) {
            fprintf(stderr, "weft demo: cannot create %s: %s\n", d->data, strerror(errno));
            return 1;
        }
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) + 64 >= sizeof(d->data)) tmp = "/tmp";
    path_join(d->data, sizeof(d->data), tmp, "weft-demo-XXXXXX"); /* fits */
    if (!mkdtemp(d->data)) {
        fprintf(stderr, "weft demo: cannot create a directory %s: %s\n", d->data, strerror(errno));
        return 1;
    }
    d->tmp_data = true;
    return 0;
}

/* The routes file weft serve reads (--config): why each setting is there is said in it. */
static int write_config(const demo_t *d, char *path, size_t cap)
{
    path_join(path, cap, d->data, "weft.yaml"); /* fits: make_data_dir */
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "weft demo: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(f, "# written by `weft demo` (docs/demo.md): the gateway's routes to the demo's\n"
               "# services; edit and `kill -HUP` weft serve to reload them.\n"
               "# on SIGTERM, 1 s of serving on before stopping: when the demo is killed\n"
               "# outright every process gets SIGTERM at once, and the hellos' deregistrations\n"
               "# must still find the registry\n"
               "http:\n"
               "  shutdown_delay: 1s\n"
               "gateway:\n"
               "  routes:\n"
               "    # straight to inventory; its instances' breakers see inventory-2 fail, and\n"
               "    # two failures in a row (now and then) open inventory-2's for 10 s\n"
               "    - name: inventory\n"
               "      match: { path_prefix: /inventory }\n"
               "      strip_prefix: true\n"
               "      service: inventory\n"
               "      timeout: 5s\n"
               "      circuit_breaker: { consecutive_failures: 2, open_for: 10s, "
               "scope: instance }\n"
               "    # everything else to frontend, which calls orders, which calls inventory\n"
               "    - name: frontend\n"
               "      match: { path_prefix: / }\n"
               "      service: frontend\n"
               "      timeout: 5s\n"
               "      retry: { attempts: 1, on: [connect-failure, reset, 503] }\n"
               "      circuit_breaker: { failure_rate: 50%%, window: 10s, min_requests: 20, "
               "open_for: 10s }\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "weft demo: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Prints the last bytes of a child's log on stderr, to say why it failed. */
static void print_log_tail(const child_t *c)
{
    FILE *f = fopen(c->log, "r");
    if (!f) return;
    char buf[2048];
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)sizeof(buf) - 1 ? end - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    if (n)
        fprintf(stderr, "--- the end of %s ---\n%s%s", c->log, buf, buf[n - 1] == '\n' ? "" : "\n");
}

/* ---- children ---- */

/* Starts argv (argv[0] a path) as child c in the demo's process group (a new one, led by
 * it, for the first child), stdin from /dev/null, stdout and stderr to c->log. */
static int spawn(demo_t *d, child_t *c, char *const argv[])
{
    int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || nul < 0) {
        fprintf(stderr, "weft demo: cannot open %s: %s\n", fd < 0 ? c->log : "/dev/null",
                strerror(errno));
        if (fd >= 0) close(fd);
        if (nul >= 0) close(nul);
        return 1;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, d->pgid); /* 0: a group of its own */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127); /* the demo died before the line above */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        dprintf(2, "weft demo: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int e = errno;
    close(fd);
    close(nul);
    if (pid < 0) {
        fprintf(stderr, "weft demo: cannot start %s: %s\n", c->name, strerror(e));
        return 1;
    }
    /* the parent sets the group too, so that it holds whichever runs first (the child may
     * have exec'd already: then the call fails, and the child's own call did it) */
    setpgid(pid, d->pgid ? d->pgid : pid);
    if (!d->pgid) d->pgid = pid;
    c->pid = pid;
    return 0;
}

static bool running(const child_t *c)
{
    return c->pid > 0 && !c->reaped;
}

/* Reaps c if it has ended (without waiting, unless block); returns whether it has. */
static bool reap(child_t *c, bool block)
{
    if (!running(c)) return true;
    int st;
    pid_t r;
    do r = waitpid(c->pid, &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->reaped = true;
        c->status = r == c->pid ? st : 0;
    }
    return c->reaped;
}

static void describe_status(const child_t *c, char *out, size_t cap)
{
    if (WIFSIGNALED(c->status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(c->status),
                 strsignal(WTERMSIG(c->status)));
    else
        snprintf(out, cap, "exit status %d", WEXITSTATUS(c->status));
}

/* Whether every child still runs; one found ended is reported (once) with its log's end. */
static bool all_running(demo_t *d)
{
    child_t *all[1 + NHELLO] = {&d->serve};
    for (int i = 0; i < NHELLO; i++) all[1 + i] = &d->hello_procs[i];
    bool ok = true;
    for (int i = 0; i < 1 + NHELLO; i++) {
        bool known = all[i]->reaped;
        if (all[i]->pid <= 0 || !reap(all[i], false)) continue;
        ok = false;
        if (known) continue;
        char how[96];
        describe_status(all[i], how, sizeof(how));
        fprintf(stderr, "weft demo: %s (pid %d) ended: %s\n", all[i]->name, (int)all[i]->pid, how);
        print_log_tail(all[i]);
    }
    return ok;
}

static uint64_t now_ms(void)
{
    return weft_now_ns() / 1000000;
}

/* Sleeps ms milliseconds, less when a signal comes. */
static void nap(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* SIGTERM to the n children still running, then up to ms for them to end (less after a
 * second signal); those left get SIGKILL and are waited for. */
static void stop_children(child_t *cs, int n, uint64_t ms)
{
    for (int i = 0; i < n; i++)
        if (running(&cs[i])) kill(cs[i].pid, SIGTERM);
    uint64_t deadline = now_ms() + ms;
    for (;;) {
        bool left = false;
        for (int i = 0; i < n; i++) left |= !reap(&cs[i], false);
        if (!left) return;
        if (now_ms() >= deadline || nsignals >= 2) break;
        nap(20);
    }
    for (int i = 0; i < n; i++) {
        if (!running(&cs[i])) continue;
        fprintf(stderr, "weft demo: %s (pid %d) did not stop in time: killed\n", cs[i].name,
                (int)cs[i].pid);
        kill(cs[i].pid, SIGKILL);
        reap(&cs[i], true);
    }
}

/* Stops everything started, in order; returns whether each exited cleanly. */
static bool stop_all(demo_t *d)
{
    stop_children(d->hello_procs, NHELLO, HELLO_STOP_MS);
    stop_children(&d->serve, 1, SERVE_STOP_MS);
    bool clean = true;
    child_t *all[1 + NHELLO] = {&d->serve};
    for (int i = 0; i < NHELLO; i++) all[1 + i] = &d->hello_procs[i];
    for (int i = 0; i < 1 + NHELLO; i++) {
        if (all[i]->pid <= 0) continue;
        reap(all[i], true);
        if (WIFEXITED(all[i]->status) && WEXITSTATUS(all[i]->status) == 0) continue;
        char how[96];
        describe_status(all[i], how, sizeof(how));
        fprintf(stderr, "weft demo: %s (pid %d): %s; its log: %s\n", all[i]->name, (int)all[i]->pid,
                how, all[i]->log);
        clean = false;
    }
    return clean;
}

/* ---- requests ---- */

static void api_init(weft__api_t *a, const addr_t *addr)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->host, sizeof(a->host), "%s", addr->connect);
    a->port = (uint16_t)addr->port;
    char hp[80];
    snprintf(a->url, sizeof(a->url), "http://%s", addr_str(addr, true, hp, sizeof(hp)));
    a->timeout_ms = CALL_TIMEOUT_MS;
}

/* GET target; the call's outcome is in *c (free it with weft__api_call_free). */
static void get(const weft__api_t *api, const char *target, weft__api_call_t *c)
{
    memset(c, 0, sizeof(*c));
    c->method = "GET";
    c->target = target;
    weft__api_run(api, c, 1);
}

/* Waits until weft serve's API answers, or fails (weft serve ended, a signal, the
 * deadline). */
static int wait_api(demo_t *d, const weft__api_t *api, uint64_t deadline)
{
    while (nsignals == 0) {
        if (!all_running(d)) return 1;
        weft__api_call_t c;
        get(api, "/v1/status/leader", &c);
        bool up = c.err == 0 && c.status == 200;
        weft__api_call_free(&c);
        if (up) return 0;
        if (now_ms() >= deadline) {
            fprintf(stderr,
                    "weft demo: weft serve's API at %s did not answer within %d s; its "
                    "log: %s\n",
                    api->url, READY_TIMEOUT_MS / 1000, d->serve.log);
            return 1;
        }
        nap(100);
    }
    return 0;
}

/* Reads the passing instances of service from the registry into the hellos' ports;
 * returns how many of the demo's were found. */
static int passing(demo_t *d, const weft__api_t *api, const char *service)
{
    char target[128];
    snprintf(target, sizeof(target), "/v1/health/service/%s?passing", service);
    weft__api_call_t c;
    get(api, target, &c);
    int found = 0;
    json_t *arr = c.err == 0 && c.status == 200 ? json_loadb(c.resp, c.resp_len, 0, NULL) : NULL;
    weft__api_call_free(&c);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        json_t *s = json_object_get(e, "Service");
        const char *id = json_string_value(json_object_get(s, "ID"));
        json_int_t port = json_integer_value(json_object_get(s, "Port"));
        for (int k = 0; id && k < NHELLO; k++) {
            if (strcmp(hellos[k].id, id) != 0 || strcmp(hellos[k].service, service) != 0) continue;
            d->hello_procs[k].port = (unsigned)port;
            found++;
        }
    }
    json_decref(arr);
    return found;
}

/* Waits until every hello is registered and its check passing. */
static int wait_hellos(demo_t *d, const weft__api_t *api, uint64_t deadline)
{
    static const char *const services[] = {"frontend", "orders", "inventory"};
    while (nsignals == 0) {
        if (!all_running(d)) return 1;
        int n = 0;
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
            n += passing(d, api, services[i]);
        if (n == NHELLO) return 0;
        if (now_ms() >= deadline) {
            fprintf(stderr,
                    "weft demo: %d of the %d instances were registered and passing within "
                    "%d s; their logs are in %s\n",
                    n, NHELLO, READY_TIMEOUT_MS / 1000, d->data);
            return 1;
        }
        nap(200);
    }
    return 0;
}

/* ---- the run ---- */

static void print_summary(const demo_t *d)
{
    char api[80], gw[80], otlp[80], zip[80], hp[80];
    addr_str(&d->api, true, api, sizeof(api));
    addr_str(&d->gateway, true, gw, sizeof(gw));
    addr_str(&d->otlp, true, otlp, sizeof(otlp));
    addr_str(&d->zipkin, true, zip, sizeof(zip));
    printf("weft demo: started (process group %d)\n", (int)d->pgid);
    printf("  %-12s pid %-7d api http://%s  gateway http://%s  otlp %s  zipkin %s\n", d->serve.name,
           (int)d->serve.pid, api, gw, otlp, zip);
    for (int i = 0; i < NHELLO; i++) {
        const child_t *c = &d->hello_procs[i];
        char extra[96] = "";
        if (hellos[i].flaky)
            snprintf(extra, sizeof(extra), "fails %g%% of its requests (500)", d->fail_rate * 100);
        else
            snprintf(extra, sizeof(extra), "%s", hellos[i].role);
        snprintf(hp, sizeof(hp), "127.0.0.1:%u", c->port);
        printf(*extra ? "  %-12s pid %-7d service %-10s http://%-16s %s\n"
                      : "  %-12s pid %-7d service %-10s http://%s%s\n",
               c->name, (int)c->pid, hellos[i].service, hp, extra);
    }
    if (d->rate > 0)
        printf("  %-12s %g requests/s through the gateway: http://%s%s, %s, %s\n", "traffic",
               d->rate, gw, paths[0], paths[1], paths[3]);
    else
        printf("  %-12s none (--rate 0)\n", "traffic");
    printf("  %-12s %s (weft.yaml: the routes; *.log: each process's output)\n", "data", d->data);
    printf("dashboard: http://%s/ui/\n", api);
    printf("traces: http://%s/api/traces?service=frontend  metrics: http://%s/metrics\n", api, api);
    printf("Ctrl-C stops everything the demo started.\n");
}

/* Sends the trickle until a signal or a child ends; returns 0 or 1 (a child failed). */
static int traffic(demo_t *d)
{
    weft__api_t gw;
    api_init(&gw, &d->gateway);
    uint64_t interval = d->rate > 0 ? (uint64_t)(1000.0 / d->rate) : 0;
    uint64_t next = now_ms(), report = next + REPORT_EVERY_MS;
    unsigned long sent = 0, ok = 0, c4 = 0, c5 = 0, lost = 0;
    size_t k = 0; /* the next path */
    while (nsignals == 0) {
        if (!all_running(d)) return 1;
        uint64_t now = now_ms();
        if (now >= report) {
            printf("traffic: %lu requests in the last %d s: %lu 2xx, %lu 4xx, %lu 5xx, %lu "
                   "unanswered\n",
                   sent, REPORT_EVERY_MS / 1000, ok, c4, c5, lost);
            sent = ok = c4 = c5 = lost = 0;
            report = now + REPORT_EVERY_MS;
        }
        if (!interval) {
            nap(200);
            continue;
        }
        if (now < next) {
            nap(next - now < 200 ? next - now : 200);
            continue;
        }
        /* a steady pace; after a slow answer, on from now rather than a burst */
        next = next + interval > now ? next + interval : now + interval;
        weft__api_call_t c;
        get(&gw, paths[k++ % (sizeof(paths) / sizeof(paths[0]))], &c);
        sent++;
        if (c.err != 0 && c.status == 0)
            lost++;
        else if (c.status >= 500)
            c5++;
        else if (c.status >= 400)
            c4++;
        else if (c.status >= 200 && c.status < 300)
            ok++;
        weft__api_call_free(&c);
    }
    return 0;
}

int weft__demo_run(int argc, char **argv)
{
    demo_t *d = calloc(1, sizeof(*d));
    if (!d) {
        fprintf(stderr, "weft demo: out of memory\n");
        return 1;
    }
    const char *hello = NULL, *data = NULL;
    int rc = parse_args(d, argc, argv, &hello, &data);
    if (rc != 0) {
        free(d);
        return rc == 1 ? 0 : rc;
    }
    /* this binary, and hello beside it in the build tree (build/weft, build/examples/hello) */
    ssize_t n = readlink("/proc/self/exe", d->self, sizeof(d->self) - 1);
    if (n <= 0 || n >= (ssize_t)sizeof(d->self) - 1) {
        fprintf(stderr, "weft demo: cannot read /proc/self/exe: %s\n", strerror(errno));
        free(d);
        return 1;
    }
    d->self[n] = 0;
    if (hello) {
        snprintf(d->hello, sizeof(d->hello), "%s", hello);
    } else {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", d->self);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        if (!path_join(d->hello, sizeof(d->hello), dir, "examples/hello")) {
            fprintf(stderr, "weft demo: the path of the weft binary is too long\n");
            free(d);
            return 2;
        }
    }
    if (access(d->hello, X_OK) != 0) {
        fprintf(stderr,
                "weft demo: the hello example %s is missing or not executable (%s): build it "
                "(make build), or name it with --hello PATH\n",
                d->hello, strerror(errno));
        free(d);
        return 2;
    }
    if ((rc = make_data_dir(d, data)) != 0) {
        free(d);
        return rc;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line as it is made, through a pipe too */
    /* the demo's spans go to the demo's weft: OpenTelemetry's variables would send them
     * elsewhere (weft serve and the SDK both read them) */
    static const char *const otel[] = {"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT",
                                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME"};
    for (size_t i = 0; i < sizeof(otel) / sizeof(otel[0]); i++) unsetenv(otel[i]);

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end early */
    sigfillset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    char cfg[PATH_MAX + 16];
    rc = write_config(d, cfg, sizeof(cfg));
    char api_s[80], gw_s[80], otlp_s[80], zip_s[80], dns_s[80], otlp_c[80], registry[96];
    addr_str(&d->api, false, api_s, sizeof(api_s));
    addr_str(&d->gateway, false, gw_s, sizeof(gw_s));
    addr_str(&d->otlp, false, otlp_s, sizeof(otlp_s));
    addr_str(&d->zipkin, false, zip_s, sizeof(zip_s));
    addr_str(&d->dns, false, dns_s, sizeof(dns_s));
    addr_str(&d->otlp, true, otlp_c, sizeof(otlp_c));
    char tmp[80];
    snprintf(registry, sizeof(registry), "http://%s", addr_str(&d->api, true, tmp, sizeof(tmp)));

    weft__api_t api;
    api_init(&api, &d->api);
    uint64_t deadline = now_ms() + READY_TIMEOUT_MS;
    if (rc == 0) {
        snprintf(d->serve.name, sizeof(d->serve.name), "weft serve");
        path_join(d->serve.log, sizeof(d->serve.log), d->data, "weft.log"); /* fits */
        /* the demo's 17 (a NULL last), and those after -- */
        char **args = calloc((size_t)d->nserve_args + 18, sizeof(char *));
        if (!args) {
            rc = 1;
        } else {
            int k = 0;
            args[k++] = d->self;
            args[k++] = "serve";
            args[k++] = "--config", args[k++] = cfg;
            args[k++] = "--data-dir", args[k++] = d->data;
            args[k++] = "--api", args[k++] = api_s;
            args[k++] = "--gateway", args[k++] = gw_s;
            args[k++] = "--otlp", args[k++] = otlp_s;
            args[k++] = "--zipkin", args[k++] = zip_s;
            args[k++] = "--dns", args[k++] = dns_s;
            for (int i = 0; i < d->nserve_args; i++) args[k++] = d->serve_args[i];
            args[k] = NULL;
            rc = spawn(d, &d->serve, args);
            free(args);
        }
    }
    if (rc == 0) rc = wait_api(d, &api, deadline);
    for (int i = 0; rc == 0 && nsignals == 0 && i < NHELLO; i++) {
        child_t *c = &d->hello_procs[i];
        snprintf(c->name, sizeof(c->name), "%s", hellos[i].id);
        char file[32];
        snprintf(file, sizeof(file), "%s.log", hellos[i].id);
        path_join(c->log, sizeof(c->log), d->data, file); /* fits: make_data_dir */
        char port[16], rate[32];
        snprintf(port, sizeof(port), "%u", d->hello_port ? d->hello_port + (unsigned)i : 0);
        snprintf(rate, sizeof(rate), "%g", d->fail_rate);
        char *args[] = {d->hello,
                        "--name",
                        (char *)hellos[i].service,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        port,
                        "--workers",
                        "1",
                        "--registry",
                        registry,
                        "--registry-id",
                        (char *)hellos[i].id,
                        "--registry-check-interval",
                        "2s",
                        "--registry-tags",
                        hellos[i].flaky ? "demo,flaky" : "demo",
                        "--otlp",
                        otlp_c,
                        hellos[i].flaky ? "--fail-rate" : NULL,
                        rate,
                        NULL};
        rc = spawn(d, c, args);
    }
    if (rc == 0 && nsignals == 0) rc = wait_hellos(d, &api, deadline);
    if (rc == 0 && nsignals == 0) {
        print_summary(d);
        rc = traffic(d);
    }
    if (nsignals) printf("weft demo: %s: stopping\n", strsignal(last_signal));
    if (!stop_all(d) && rc == 0) rc = 1;
    if (d->tmp_data) nftw(d->data, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("weft demo: stopped%s\n", rc == 0 ? "" : " (after a failure: see above)");
    free(d);
    return rc;
}
